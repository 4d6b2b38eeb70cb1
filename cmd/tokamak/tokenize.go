package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/tokamak-ai/tokamak/engine/tokenizer"
)

// tokenizeCommand is `tokamak tokenize`: text to ids, or ids to text.
func tokenizeCommand() *cli.Command {
	return &cli.Command{
		Name:  "tokenize",
		Usage: "encode text to token ids (--text) or decode ids to text (--decode) with a model's tokenizer",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Required: true, Usage: "folder with tokenizer.json and tokenizer_config.json"},
			&cli.StringFlag{Name: "text", Aliases: []string{"t"}, Usage: "text to encode (\"-\" reads stdin)"},
			&cli.StringFlag{Name: "decode", Usage: "comma- or space-separated token ids to decode"},
			&cli.BoolFlag{Name: "json", Usage: "print the ids as a JSON array"},
			&cli.BoolFlag{Name: "add-special", Usage: "add the BOS/EOS tokens the tokenizer adds by default"},
		},
		Action: runTokenize,
	}
}

func runTokenize(c *cli.Context) error {
	text, decode := c.String("text"), c.String("decode")
	if c.IsSet("text") == c.IsSet("decode") {
		return errors.New("tokenize: give exactly one of --text TEXT or --decode 1,2,3")
	}
	tok, err := tokenizer.Load(c.String("model"))
	if err != nil {
		return err
	}
	out := c.App.Writer
	if c.IsSet("decode") {
		ids, err := parseTokenIDs(decode)
		if err != nil {
			return fmt.Errorf("tokenize --decode: %w", err)
		}
		_, err = fmt.Fprintln(out, tok.Decode(ids))
		return err
	}
	if text == "-" {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return fmt.Errorf("tokenize: read stdin: %w", err)
		}
		text = string(b)
	}
	ids, err := tok.Encode(text, c.Bool("add-special"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if ids == nil {
			ids = []int32{}
		}
		b, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(out, string(b))
		return err
	}
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprint(id)
	}
	_, err = fmt.Fprintln(out, strings.Join(parts, " "))
	return err
}

// parseTokenIDs reads ids separated by commas and/or spaces.
func parseTokenIDs(s string) ([]int32, error) {
	var ids []int32
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		var id int32
		if _, err := fmt.Sscan(f, &id); err != nil || id < 0 {
			return nil, fmt.Errorf("bad token id %q", f)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, errors.New("no token ids")
	}
	return ids, nil
}

// templateCommand is `tokamak template`: render a chat with the model's template.
func templateCommand() *cli.Command {
	return &cli.Command{
		Name:  "template",
		Usage: "render a JSON list of chat messages with the model's chat template",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Aliases: []string{"m"}, Required: true, Usage: "folder with tokenizer.json and tokenizer_config.json"},
			&cli.StringFlag{Name: "messages", Required: true, Usage: "JSON file: a list of {role, content, ...} messages, or an object {messages, tools}"},
			&cli.BoolFlag{Name: "no-generation-prompt", Usage: "do not append the assistant header"},
			&cli.StringFlag{Name: "name", Usage: "which of several named templates to use"},
		},
		Action: runTemplate,
	}
}

func runTemplate(c *cli.Context) error {
	tok, err := tokenizer.Load(c.String("model"))
	if err != nil {
		return err
	}
	path := c.String("messages")
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("template: %w", err)
	}
	var req struct {
		Messages json.RawMessage   `json:"messages"`
		Tools    []json.RawMessage `json:"tools"`
	}
	if trimmed := strings.TrimSpace(string(b)); strings.HasPrefix(trimmed, "[") {
		req.Messages = b
	} else if err := json.Unmarshal(b, &req); err != nil {
		return fmt.Errorf("template: %s: want a JSON list of messages or {\"messages\": [...], \"tools\": [...]}: %w", path, err)
	}
	messages, err := tokenizer.MessagesFromJSON(req.Messages)
	if err != nil {
		return fmt.Errorf("template: %s: %w", path, err)
	}
	opts := tokenizer.ChatOptions{AddGenerationPrompt: !c.Bool("no-generation-prompt"), TemplateName: c.String("name")}
	for _, t := range req.Tools {
		opts.Tools = append(opts.Tools, t)
	}
	text, err := tok.ApplyChatTemplate(messages, opts)
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(c.App.Writer, text)
	return err
}
