// Command tokamak is the Tokamak LLM inference engine's command line:
// generate, serve, inspect and benchmark Llama-family models from Hugging
// Face checkpoints, on a GPU (built with -tags cuda) or on the CPU.
package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "tokamak:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:      "tokamak",
		Usage:     "serve and run Llama-family LLMs from Hugging Face checkpoints",
		Writer:    os.Stdout,
		ErrWriter: os.Stderr,
		Commands: []*cli.Command{
			generateCommand(),
			infoCommand(),
			modelCommand(),
			tokenizeCommand(),
			templateCommand(),
			serveCommand(),
			benchCommand(),
		},
	}
}
