package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"

	"github.com/ardanlabs/jinja"
)

// Message is one chat message: "role", "content" and whatever else the
// template reads ("tool_calls", "name", "reasoning_content", ...). The
// messages of an OpenAI request decode into []Message directly. Values of
// type json.RawMessage are decoded keeping their key order, so that the
// template's tojson renders objects exactly as sent (Go maps render with
// sorted keys).
type Message map[string]any

// MessagesFromJSON decodes a JSON array of messages so that every nested
// object keeps its key order through the template's tojson (each field is
// kept as json.RawMessage and decoded in order when rendering).
func MessagesFromJSON(raw []byte) ([]Message, error) {
	var fields []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("messages: want a JSON array of objects: %w", err)
	}
	msgs := make([]Message, len(fields))
	for i, f := range fields {
		m := make(Message, len(f))
		for k, v := range f {
			m[k] = v
		}
		msgs[i] = m
	}
	return msgs, nil
}

// ChatOptions are the template variables besides the messages.
type ChatOptions struct {
	// AddGenerationPrompt appends the assistant header so the model answers.
	AddGenerationPrompt bool
	// Tools is the OpenAI "tools" list (nil: no tools; the template sees none).
	Tools []any
	// Documents is the RAG "documents" list some templates read.
	Documents []any
	// TemplateName picks one of several named templates; "" picks
	// "tool_use" when Tools is set and such a template exists, else "default".
	TemplateName string
	// Extra holds further variables, e.g. "enable_thinking": false for Qwen3.
	Extra map[string]any
}

// chatTemplate is one compiled template, or the error compiling it gave.
type chatTemplate struct {
	tmpl *jinja.Template
	err  error
}

// compile returns the compiled template, compiling it on first use.
func (t *Tokenizer) compile(name, src string) (*jinja.Template, error) {
	if c, ok := t.compiled.Load(name); ok {
		ct := c.(chatTemplate)
		return ct.tmpl, ct.err
	}
	tmpl, err := jinja.Compile(src)
	t.compiled.Store(name, chatTemplate{tmpl, err})
	return tmpl, err
}

// setTemplates reads chat_template: a string, or a list of {name, template}.
func (t *Tokenizer) setTemplates(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		t.templates = map[string]string{"default": one}
		return nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return fmt.Errorf("chat_template: want a string or a list of {name, template}: %w", err)
	}
	t.templates = make(map[string]string, len(named))
	for _, n := range named {
		t.templates[n.Name] = n.Template
	}
	return nil
}

// TemplateNames lists the chat templates' names ("default" for a plain one).
func (t *Tokenizer) TemplateNames() []string {
	names := make([]string, 0, len(t.templates))
	for n := range t.templates {
		names = append(names, n)
	}
	return names
}

// ApplyChatTemplate renders messages with the chat template, as
// transformers' apply_chat_template(tokenize=False) does: Jinja with
// trim_blocks and lstrip_blocks, the variables messages,
// add_generation_prompt, bos_token, eos_token (and pad/unk tokens), tools,
// documents, the opts.Extra ones, and the raise_exception and strftime_now
// helpers. Errors say which template, and the line for syntax errors.
func (t *Tokenizer) ApplyChatTemplate(messages []Message, opts ChatOptions) (string, error) {
	name := opts.TemplateName
	if name == "" {
		name = "default"
		if _, ok := t.templates["tool_use"]; ok && opts.Tools != nil {
			name = "tool_use"
		}
	}
	src, ok := t.templates[name]
	if !ok {
		if len(t.templates) == 0 {
			return "", errors.New("chat template: the tokenizer has none (tokenizer_config.json has no chat_template)")
		}
		return "", fmt.Errorf("chat template %q: not found (have %v)", name, t.TemplateNames())
	}
	where := fmt.Sprintf("chat template %q of %s", name, t.templateFrom)
	tmpl, err := t.compile(name, src)
	if err != nil {
		return "", fmt.Errorf("%s: %w%s", where, err, locateUnclosed(src, err))
	}
	msgs := make([]jinja.Value, len(messages))
	for i, m := range messages {
		msgs[i] = toValue(map[string]any(m))
	}
	data := map[string]jinja.Value{
		"messages":              jinja.NewList(msgs),
		"add_generation_prompt": jinja.NewBool(opts.AddGenerationPrompt),
		"bos_token":             jinja.NewString(t.bosToken),
		"eos_token":             jinja.NewString(t.eosToken),
	}
	for k, v := range t.extraTokens {
		data[k] = jinja.NewString(v)
	}
	if opts.Tools != nil {
		data["tools"] = toValue(opts.Tools)
	} else {
		data["tools"] = jinja.None()
	}
	if opts.Documents != nil {
		data["documents"] = toValue(opts.Documents)
	} else {
		data["documents"] = jinja.None()
	}
	for k, v := range opts.Extra {
		data[k] = toValue(v)
	}
	out, err := tmpl.RenderValues(data)
	if err != nil {
		return "", fmt.Errorf("%s: render: %w", where, err)
	}
	return out, nil
}

var blockTag = regexp.MustCompile(`\{%-?\s*(\w+)([^%]*)%\}`)

// locateUnclosed names the line of the innermost block left open when the
// parser reports an unclosed block without saying where.
func locateUnclosed(src string, err error) string {
	if !strings.Contains(err.Error(), "unclosed") {
		return ""
	}
	type open struct{ tag, line int }
	var stack []open
	for _, m := range blockTag.FindAllStringSubmatchIndex(src, -1) {
		kw := src[m[2]:m[3]]
		line := strings.Count(src[:m[0]], "\n") + 1
		switch {
		case kw == "if" || kw == "for" || kw == "macro" || kw == "call" || kw == "filter" || kw == "raw" || kw == "generation" || kw == "block":
			stack = append(stack, open{m[0], line})
		case kw == "set" && !strings.Contains(src[m[4]:m[5]], "="):
			stack = append(stack, open{m[0], line})
		case strings.HasPrefix(kw, "end") && len(stack) > 0:
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) == 0 {
		return ""
	}
	top := stack[len(stack)-1]
	snippet := src[top.tag:]
	if i := strings.Index(snippet, "%}"); i >= 0 {
		snippet = snippet[:i+2]
	}
	return fmt.Sprintf(" (the block opened at line %d, %s, is never closed)", top.line, snippet)
}

// toValue converts Go data to template values. json.RawMessage is decoded
// keeping key order; integral float64 become ints (JSON numbers decoded by
// encoding/json are float64, while Python keeps 1 an int for tojson).
func toValue(v any) jinja.Value {
	switch x := v.(type) {
	case json.RawMessage:
		val, err := decodeOrdered(x)
		if err != nil {
			return jinja.NewString(string(x))
		}
		return val
	case Message:
		return toValue(map[string]any(x))
	case []Message:
		items := make([]jinja.Value, len(x))
		for i, m := range x {
			items[i] = toValue(m)
		}
		return jinja.NewList(items)
	case []any:
		items := make([]jinja.Value, len(x))
		for i, m := range x {
			items[i] = toValue(m)
		}
		return jinja.NewList(items)
	case map[string]any:
		d := jinja.NewDict()
		dict := d.AsDict()
		for _, k := range sortedKeys(x) {
			dict.Set(k, toValue(x[k]))
		}
		return d
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return jinja.NewInt(int64(x))
		}
		return jinja.NewFloat(x)
	case int32:
		return jinja.NewInt(int64(x))
	}
	return jinja.FromGoValue(v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// decodeOrdered decodes JSON into template values, objects keeping key order.
func decodeOrdered(raw []byte) (jinja.Value, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return decodeValue(dec)
}

func decodeValue(dec *json.Decoder) (jinja.Value, error) {
	tok, err := dec.Token()
	if err != nil {
		return jinja.Undefined(), err
	}
	switch x := tok.(type) {
	case json.Delim:
		switch x {
		case '[':
			var items []jinja.Value
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return jinja.Undefined(), err
				}
				items = append(items, v)
			}
			_, err := dec.Token()
			return jinja.NewList(items), err
		case '{':
			d := jinja.NewDict()
			dict := d.AsDict()
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return jinja.Undefined(), err
				}
				v, err := decodeValue(dec)
				if err != nil {
					return jinja.Undefined(), err
				}
				dict.Set(k.(string), v)
			}
			_, err := dec.Token()
			return d, err
		}
		return jinja.Undefined(), fmt.Errorf("unexpected %v", x)
	default:
		return jinja.FromGoValue(tok), nil
	}
}
