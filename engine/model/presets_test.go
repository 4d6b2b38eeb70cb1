package model

import "testing"

func TestPresetsParseWithTheirPublishedSizes(t *testing.T) {
	want := map[string]float64{ // parameters, billions (published sizes)
		"llama-3.1-8b": 8.03, "llama-3.2-1b": 1.24, "llama-3.1-70b": 70.6,
		"qwen2.5-7b": 7.62, "qwen2.5-0.5b": 0.49, "qwen3-8b": 8.19, "mistral-7b": 7.25,
	}
	for _, name := range PresetNames() {
		c, err := Preset(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := float64(c.ParamCount()) / 1e9
		if w, ok := want[name]; !ok || got < w*0.98 || got > w*1.02 {
			t.Errorf("%s: %.2fB parameters, want about %.2fB", name, got, w)
		}
	}
	if _, err := Preset("gpt-5"); err == nil {
		t.Error("unknown preset accepted")
	}
}
