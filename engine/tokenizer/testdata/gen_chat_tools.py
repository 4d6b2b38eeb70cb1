# Regenerates chat_tools.json: the reference render of the qwen3 and llama3
# chat templates with tools, using jinja2 configured as transformers does
# (sandboxed, trim_blocks, lstrip_blocks, loopcontrols, its tojson and
# raise_exception). Run from this folder: python3 gen_chat_tools.py
import json, jinja2, jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
def raise_exception(m): raise jinja2.exceptions.TemplateError(m)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters['tojson'] = tojson
env.globals['raise_exception'] = raise_exception
msgs = [
 {"role":"system","content":"Be brief."},
 {"role":"user","content":"Weather in Paris?"},
 {"role":"assistant","content":"<think>\nneed tool\n</think>\n\n","tool_calls":[{"type":"function","function":{"name":"get_weather","arguments":{"city":"Paris","unit":"c"}}}]},
 {"role":"tool","content":"{\"temp\": 21}"},
 {"role":"tool","content":"sunny"},
 {"role":"assistant","content":"21°C and sunny."},
 {"role":"user","content":"Thanks — café?"},
]
tools = [{"type":"function","function":{"name":"get_weather","description":"Get the weather é","parameters":{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["c","f"]}},"required":["city"]}}}]
out = {"messages": msgs, "tools": tools}
for n in ["qwen3","llama3"]:
    cfg = json.load(open(f"../../../../shared/testdata/tokenizers/{n}/tokenizer_config.json"))
    t = env.from_string(cfg["chat_template"])
    out[n] = t.render(messages=msgs, tools=tools, add_generation_prompt=True, enable_thinking=False, bos_token="<|begin_of_text|>" if n=="llama3" else None, eos_token=cfg["eos_token"])
    out[n+"_notools"] = t.render(messages=msgs, tools=None, add_generation_prompt=False, bos_token="<|begin_of_text|>" if n=="llama3" else None, eos_token=cfg["eos_token"])
json.dump(out, open("chat_tools.json", "w"), ensure_ascii=False, indent=1)
print(out["qwen3"]); print("----"); print(out["qwen3_notools"])
