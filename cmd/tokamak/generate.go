package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/tokamak-ai/tokamak/engine/model"
	"github.com/tokamak-ai/tokamak/engine/sample"
	"github.com/tokamak-ai/tokamak/engine/tokenizer"
)

func generateCommand() *cli.Command {
	return &cli.Command{
		Name:  "generate",
		Usage: "generate a continuation of one prompt, streaming it to stdout",
		Flags: []cli.Flag{
			modelFlag, deviceFlag, gpuMemFlag,
			&cli.StringFlag{Name: "prompt", Aliases: []string{"p"}, Usage: "prompt text (needs the model's tokenizer)"},
			&cli.StringFlag{Name: "prompt-ids", Usage: "prompt as comma-separated token ids"},
			&cli.BoolFlag{Name: "chat", Usage: "wrap --prompt as a user message with the model's chat template"},
			&cli.StringFlag{Name: "output", Value: "text", Usage: "text or ids (space-separated token ids on one line)"},
			&cli.IntFlag{Name: "max-tokens", Value: 128, Usage: "tokens to generate at most"},
			&cli.Float64Flag{Name: "temperature", Value: 0.8, Usage: "sampling temperature; 0 is greedy"},
			&cli.Float64Flag{Name: "top-p", Value: 1, Usage: "nucleus sampling mass"},
			&cli.IntFlag{Name: "top-k", Value: 0, Usage: "keep the k most likely tokens (0: all)"},
			&cli.Float64Flag{Name: "min-p", Value: 0, Usage: "drop tokens below min-p × the top probability"},
			&cli.Int64Flag{Name: "seed", Value: -1, Usage: "random seed (-1: random)"},
			&cli.BoolFlag{Name: "ignore-eos", Usage: "keep generating past end-of-sequence tokens"},
		},
		Action: runGenerate,
	}
}

// loadTokenizer loads dir's tokenizer, or returns nil when it has none.
func loadTokenizer(dir string) (*tokenizer.Tokenizer, error) {
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err != nil {
		return nil, nil
	}
	return tokenizer.Load(dir)
}

func runGenerate(c *cli.Context) error {
	dir, err := resolveModel(c)
	if err != nil {
		return err
	}
	params := sample.Params{
		Temperature: float32(c.Float64("temperature")),
		TopP:        float32(c.Float64("top-p")),
		TopK:        c.Int("top-k"),
		MinP:        float32(c.Float64("min-p")),
	}
	if seed := c.Int64("seed"); seed >= 0 {
		params.Seed, params.HasSeed = uint64(seed), true
	} else {
		params.Seed = sample.NewSeed()
	}
	if err := params.Validate(); err != nil {
		return err
	}
	idsOut := c.String("output") == "ids"
	if !idsOut && c.String("output") != "text" {
		return fmt.Errorf("--output must be text or ids, not %q", c.String("output"))
	}
	tok, err := loadTokenizer(dir)
	if err != nil {
		return err
	}
	prompt, err := promptIDs(c, tok)
	if err != nil {
		return err
	}
	if tok == nil && !idsOut {
		return fmt.Errorf("model %s has no tokenizer.json: use --prompt-ids and --output ids", dir)
	}

	b, err := openBackend(c)
	if err != nil {
		return err
	}
	defer b.Close()
	loadStart := time.Now()
	m, err := model.Load(dir, b)
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(c.App.ErrWriter, "loaded %s on %s in %.2fs\n", dir, b.Name(), time.Since(loadStart).Seconds())

	maxTokens := c.Int("max-tokens")
	limit := m.Config.MaxPositionEmbeddings
	if len(prompt) >= limit {
		return fmt.Errorf("prompt of %d tokens does not fit the model's context of %d", len(prompt), limit)
	}
	maxTokens = min(maxTokens, limit-len(prompt))
	if maxTokens <= 0 {
		return fmt.Errorf("--max-tokens must be positive")
	}
	eos := m.Config.EOSIDs()
	if tok != nil {
		eos = append(eos, tok.EOS()...)
	}
	if c.Bool("ignore-eos") {
		eos = nil
	}
	s, err := m.NewSession(len(prompt) + maxTokens)
	if err != nil {
		return err
	}
	defer s.Close()
	out := bufio.NewWriter(c.App.Writer)
	defer out.Flush()
	var stream *tokenizer.StreamDecoder
	if tok != nil {
		stream = tok.NewStreamDecoder()
	}
	hist := sample.NewHistory(prompt)
	start := time.Now()
	var firstToken time.Duration
	generated := 0
	input := prompt
	for generated < maxTokens {
		rows, err := s.Feed(input, false)
		if err != nil {
			return err
		}
		res, err := sample.Sample(rows[0], params, hist, uint64(generated))
		if err != nil {
			return err
		}
		if generated == 0 {
			firstToken = time.Since(start)
		}
		generated++
		hist.Append(res.Token)
		if slices.Contains(eos, res.Token) {
			break
		}
		switch {
		case idsOut && generated > 1:
			fmt.Fprintf(out, " %d", res.Token)
		case idsOut:
			fmt.Fprintf(out, "%d", res.Token)
		default:
			out.WriteString(stream.Add(res.Token))
		}
		out.Flush()
		input = []int32{res.Token}
	}
	out.WriteString("\n")
	out.Flush()
	total := time.Since(start)
	decodeRate := 0.0
	if generated > 1 {
		decodeRate = float64(generated-1) / (total - firstToken).Seconds()
	}
	fmt.Fprintf(c.App.ErrWriter, "prompt %d tokens, generated %d tokens, time to first token %.1f ms, %.1f tokens/s\n",
		len(prompt), generated, float64(firstToken.Microseconds())/1000, decodeRate)
	return nil
}

// promptIDs builds the prompt from --prompt-ids, or from --prompt through the
// tokenizer (and the chat template with --chat).
func promptIDs(c *cli.Context, tok *tokenizer.Tokenizer) ([]int32, error) {
	if s := c.String("prompt-ids"); s != "" {
		if c.String("prompt") != "" {
			return nil, errors.New("give --prompt or --prompt-ids, not both")
		}
		return parseTokenIDs(s)
	}
	text := c.String("prompt")
	if text == "" {
		return nil, errors.New("give --prompt TEXT or --prompt-ids 1,2,3")
	}
	if tok == nil {
		return nil, errors.New("this model has no tokenizer.json: use --prompt-ids")
	}
	addSpecial := true
	if c.Bool("chat") {
		rendered, err := renderChat(tok, text)
		if err != nil {
			return nil, err
		}
		text, addSpecial = rendered, false
	}
	return tok.Encode(text, addSpecial)
}

// renderChat wraps text as a single user message with the model's template.
func renderChat(tok *tokenizer.Tokenizer, text string) (string, error) {
	if !tok.HasChatTemplate() {
		return "", errors.New("--chat: this model's tokenizer_config.json has no chat_template")
	}
	return tok.ApplyChatTemplate([]tokenizer.Message{{"role": "user", "content": text}}, tokenizer.ChatOptions{AddGenerationPrompt: true})
}
