"""Times Hugging Face tokenizers (single-threaded) on the corpus tokbench
wrote, and checks its ids against the ones Tokamak produced.

usage: python3 compare.py OUT_DIR MODEL_DIR...
"""
import json
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import tokenizers  # noqa: E402


def main():
    out, models = sys.argv[1], sys.argv[2:]
    text = open(os.path.join(out, "corpus.txt"), encoding="utf-8").read()
    mb = len(text.encode("utf-8")) / 1e6
    for d in models:
        name = os.path.basename(os.path.normpath(d))
        tok = tokenizers.Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        t0 = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        cold = time.perf_counter() - t0
        reps, elapsed = 0, 0.0
        while elapsed < 2 or reps < 3:
            t0 = time.perf_counter()
            tok.encode(text, add_special_tokens=False)
            elapsed += time.perf_counter() - t0
            reps += 1
        docs = text.split("\n\n")
        t0 = time.perf_counter()
        for d in docs:
            tok.encode(d, add_special_tokens=False)
        per_doc = time.perf_counter() - t0
        same = "?"
        p = os.path.join(out, name + ".ids.json")
        if os.path.exists(p):
            go_ids = json.load(open(p))
            same = "ids identical" if go_ids == ids else "IDS DIFFER (%d vs %d tokens)" % (len(go_ids), len(ids))
        print("hf     %-8s %8.2f MB/s (first pass %6.2f MB/s, per document %6.2f MB/s over %d docs)  %d tokens  %s  (tokenizers %s)"
              % (name, mb * reps / elapsed, mb / cold, mb / per_doc, len(docs), len(ids), same, tokenizers.__version__))


if __name__ == "__main__":
    main()
