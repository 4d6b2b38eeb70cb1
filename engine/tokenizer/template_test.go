package tokenizer

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestChatTemplateWithTools renders a conversation with tools, tool calls,
// tool results and reasoning through the qwen3 and llama3 templates and
// compares with jinja2's render under transformers' settings
// (testdata/chat_tools.json, made by testdata/gen_chat_tools.py).
func TestChatTemplateWithTools(t *testing.T) {
	toks, _ := fixtures(t)
	b, err := os.ReadFile("testdata/chat_tools.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]json.RawMessage
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	var messages []Message
	if err := json.Unmarshal(want["messages"], &messages); err != nil {
		t.Fatal(err)
	}
	// Tools as raw JSON keep their key order through tojson.
	var tools []json.RawMessage
	if err := json.Unmarshal(want["tools"], &tools); err != nil {
		t.Fatal(err)
	}
	toolList := make([]any, len(tools))
	for i, tool := range tools {
		toolList[i] = tool
	}
	for _, n := range []string{"qwen3", "llama3"} {
		for _, variant := range []string{"", "_notools"} {
			opts := ChatOptions{AddGenerationPrompt: true, Tools: toolList, Extra: map[string]any{"enable_thinking": false}}
			if variant != "" {
				opts = ChatOptions{}
			}
			var wantText string
			if err := json.Unmarshal(want[n+variant], &wantText); err != nil {
				t.Fatal(err)
			}
			got, err := toks[n].ApplyChatTemplate(messages, opts)
			if err != nil {
				t.Errorf("%s%s: %v", n, variant, err)
				continue
			}
			if got != wantText {
				t.Errorf("%s%s:\n got %q\nwant %q", n, variant, got, wantText)
			}
		}
	}
}

func TestChatTemplateErrorsSayWhere(t *testing.T) {
	model := `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`
	cases := []struct {
		name     string
		template string
		want     []string
	}{
		{"raise_exception", `{% if messages[0].role != 'system' %}{{ raise_exception('first message must be system') }}{% endif %}`,
			[]string{`chat template "default"`, "tokenizer_config.json", "first message must be system"}},
		{"mismatched end", "{% for m in messages %}\n{{ m.content }}\n{% if m.role %}\nx\n{% endfor %}",
			[]string{`chat template "default"`, "line 5", "endfor"}},
		{"unclosed block", "{% for m in messages %}\n{{ m.content }}\n{% if m.role %}\nx\n{% endif %}",
			[]string{`chat template "default"`, "line 1", "{% for m in messages %}"}},
		{"bad expression", "line one\n{{ messages[ }}", []string{"line 2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, _ := json.Marshal(map[string]any{"chat_template": c.template})
			tk, err := Load(writeTokenizer(t, model, string(cfg)))
			if err != nil {
				t.Fatal(err)
			}
			_, err = tk.ApplyChatTemplate([]Message{{"role": "user", "content": "hi"}}, ChatOptions{})
			if err == nil {
				t.Fatal("render succeeded, want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestChatTemplateNamedList(t *testing.T) {
	model := `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}`
	cfg := `{"bos_token": {"content": "<s>"}, "eos_token": "</s>", "chat_template": [
		{"name": "default", "template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ eos_token }}"},
		{"name": "tool_use", "template": "tools={{ tools | length }}"}]}`
	tk, err := Load(writeTokenizer(t, model, cfg))
	if err != nil {
		t.Fatal(err)
	}
	msgs := []Message{{"role": "user", "content": "hi"}}
	cases := []struct {
		opts ChatOptions
		want string
	}{
		{ChatOptions{}, "<s>[user]hi</s>"},
		{ChatOptions{Tools: []any{map[string]any{"type": "function"}}}, "tools=1"},
		{ChatOptions{TemplateName: "default", Tools: []any{1}}, "<s>[user]hi</s>"},
	}
	for _, c := range cases {
		got, err := tk.ApplyChatTemplate(msgs, c.opts)
		if err != nil || got != c.want {
			t.Errorf("ApplyChatTemplate(%+v) = %q, %v; want %q", c.opts, got, err, c.want)
		}
	}
	if _, err := tk.ApplyChatTemplate(msgs, ChatOptions{TemplateName: "rag"}); err == nil || !strings.Contains(err.Error(), `"rag": not found`) {
		t.Errorf("unknown template name: err = %v", err)
	}
}

func TestChatTemplateMissing(t *testing.T) {
	toks, _ := fixtures(t)
	if _, err := toks["llama2"].ApplyChatTemplate([]Message{{"role": "user", "content": "hi"}}, ChatOptions{}); err == nil || !strings.Contains(err.Error(), "has none") {
		t.Errorf("llama2 has no template: err = %v", err)
	}
}
