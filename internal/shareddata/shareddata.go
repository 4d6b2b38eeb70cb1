// Package shareddata locates the project's shared test material (small real
// models, tokenizers and Hugging Face reference outputs), which lives beside
// the project root in ../shared and is never copied into the tree.
package shareddata

import (
	"fmt"
	"os"
	"path/filepath"
)

// EnvVar overrides the location of the shared folder.
const EnvVar = "TOKAMAK_SHARED"

// Root returns the shared folder: $TOKAMAK_SHARED if set, else ../shared
// relative to the module root found by walking up from the working
// directory. It fails with a message naming what is missing.
func Root() (string, error) {
	if d := os.Getenv(EnvVar); d != "" {
		if _, err := os.Stat(d); err != nil {
			return "", fmt.Errorf("shared test data: %s=%s: %w", EnvVar, d, err)
		}
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("shared test data: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "..", "shared")
			if _, err := os.Stat(filepath.Join(d, "testdata")); err != nil {
				return "", fmt.Errorf("shared test data missing: expected %s/testdata beside the project root (or set %s): %w", d, EnvVar, err)
			}
			return filepath.Clean(d), nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("shared test data: no go.mod above %s; set %s", wd, EnvVar)
		}
	}
}

// TB is the part of testing.TB that Path needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// Path returns a path under the shared folder's testdata, failing the test
// (not skipping it) when the material is absent.
func Path(t TB, elem ...string) string {
	t.Helper()
	root, err := Root()
	if err != nil {
		t.Fatalf("%v", err)
	}
	p := filepath.Join(append([]string{root, "testdata"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("shared test data missing: %v", err)
	}
	return p
}
