// Package corpus generates the deterministic English-and-code text that the
// tokenizer throughput benchmarks encode (nothing large is committed).
package corpus

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Generate returns a deterministic English-and-code text of about n bytes:
// prose sentences from a word list with punctuation and numbers, and Go/
// Python-like code with indentation, operators and identifiers. It is what
// the throughput benchmark and bench/tokenizer measure.
func Generate(n int) string {
	words := strings.Fields(`the of and to in is was for that with as on by at from his her
they this be are have had not but which one were all their there been has when who will more
no if out so said what up its about into than them can only other new some could time these
two may then do first any my now such like our over man me even most made after also did many
before must through back years where much your way well down should because each just those
people how too little state good very make world still own see men work long get here between
both life being under never day same another know while last might us great old year off come
since against go came right used take three engine inference model token latency throughput
memory kernel batch request scheduler cache attention matrix tensor gradient server client`)
	idents := []string{"ctx", "req", "resp", "buf", "err", "tokens", "batchSize", "kv_cache", "maxLen", "i", "j", "logits", "Sampler", "http.Handler"}
	r := rand.New(rand.NewPCG(1, 2))
	var sb strings.Builder
	for sb.Len() < n {
		if r.IntN(3) == 0 {
			// A code block.
			fmt.Fprintf(&sb, "func %s(%s int) (%s, error) {\n", idents[r.IntN(len(idents))], idents[r.IntN(len(idents))], idents[r.IntN(len(idents))])
			for k := 0; k < 3+r.IntN(6); k++ {
				a, b := idents[r.IntN(len(idents))], idents[r.IntN(len(idents))]
				switch r.IntN(4) {
				case 0:
					fmt.Fprintf(&sb, "\tif %s != nil {\n\t\treturn nil, fmt.Errorf(\"%s: %%w\", %s)\n\t}\n", a, b, a)
				case 1:
					fmt.Fprintf(&sb, "\tfor %s := 0; %s < len(%s); %s++ {\n\t\t%s[%s] *= %d\n\t}\n", "i", "i", a, "i", b, "i", r.IntN(100))
				case 2:
					fmt.Fprintf(&sb, "    %s = %s.get('%s', %d) + 0x%X  # %s\n", a, b, a, r.IntN(1000), r.IntN(65536), words[r.IntN(len(words))])
				default:
					fmt.Fprintf(&sb, "\t%s := %s(%s, %.3f)\n", a, b, a, r.Float64()*10)
				}
			}
			sb.WriteString("}\n\n")
			continue
		}
		// A paragraph of prose.
		for s := 0; s < 2+r.IntN(5); s++ {
			nw := 5 + r.IntN(15)
			for w := 0; w < nw; w++ {
				word := words[r.IntN(len(words))]
				if r.IntN(8) == 0 {
					word = rareWord(r)
				}
				if w == 0 {
					word = strings.ToUpper(word[:1]) + word[1:]
				} else {
					sb.WriteByte(' ')
				}
				sb.WriteString(word)
				switch r.IntN(12) {
				case 0:
					sb.WriteByte(',')
				case 1:
					fmt.Fprintf(&sb, " %d", r.IntN(2030))
				case 2:
					sb.WriteString("'s")
				}
			}
			sb.WriteString([]string{". ", "? ", "! "}[r.IntN(3)])
		}
		if r.IntN(6) == 0 {
			sb.WriteString(foreign[r.IntN(len(foreign))])
		}
		sb.WriteString("\n\n")
	}
	return sb.String()
}

// foreign holds non-English sentences, so that the corpus exercises
// multi-byte UTF-8, NFC and byte fallback as real traffic does.
var foreign = []string{
	"Le café est très bon, n'est-ce pas ? ",
	"Die Größe der Straße überrascht öfter. ",
	"El niño comió piña y jalapeños mañana. ",
	"Привет, как дела? Всё хорошо. ",
	"今日はいい天気ですね。東京へ行きます。 ",
	"我们今天去图书馆学习机器学习。 ",
	"안녕하세요, 만나서 반갑습니다. ",
	"مرحبا بالعالم، كيف حالك؟ ",
	"नमस्ते दुनिया, आप कैसे हैं? ",
	"Emoji: 🙂🚀👍🏽 and ✓ done. ",
}

// rareWord makes a pronounceable word that is unlikely to repeat, so that
// the word cache does not hide the cost of merging.
func rareWord(r *rand.Rand) string {
	syllables := []string{"ka", "ro", "mi", "tes", "lun", "var", "po", "zen", "qui", "dra", "fel", "om", "strat", "ix", "bel", "nor"}
	var sb strings.Builder
	for k := 0; k < 2+r.IntN(4); k++ {
		sb.WriteString(syllables[r.IntN(len(syllables))])
	}
	return sb.String()
}
