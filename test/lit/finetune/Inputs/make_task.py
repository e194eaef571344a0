#!/usr/bin/env python3
"""Writes a small generated fine-tuning task (no download), seeded, as jsonl.

race:  {"article": "<animal> <verb>", "question": "who?", "options": 4 words, "answer": "A".."D"}
       the answer is the animal the article names; the three other options are objects, drawn at random. The task
       can be learnt from the options' kind alone (the article is not needed): it checks that fine-tuning trains the
       head and the encoder end to end, not reading comprehension. Chance: 25%.
pair:  {"text_a": "<word> <verb>", "text_b": "<word>", "label": 1 if both words are animals, else 0}, half each.
       Chance: 50%.
"""
import argparse
import json
import random

ANIMALS = ["cat", "dog", "owl", "fox", "pig", "cow", "bat", "elk"]
OBJECTS = ["box", "pen", "cup", "hat", "key", "jar", "net", "map"]
VERBS = ["ran", "sat", "hid", "ate"]


def race(rng):
    answer = rng.choice(ANIMALS)
    others = rng.sample(OBJECTS, 3)
    slot = rng.randrange(4)
    options = others[:slot] + [answer] + others[slot:]
    return {"article": answer + " " + rng.choice(VERBS), "question": "who?", "options": options,
            "answer": "ABCD"[slot]}


def pair(rng):
    label = rng.randrange(2)
    a, b = rng.choice(ANIMALS), rng.choice(ANIMALS)
    if not label:  # at least one object
        which = rng.randrange(3)
        a = rng.choice(OBJECTS) if which != 1 else a
        b = rng.choice(OBJECTS) if which != 0 else b
    return {"text_a": a + " " + rng.choice(VERBS), "text_b": b, "label": label}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("task", choices=["race", "pair"])
    ap.add_argument("count", type=int)
    ap.add_argument("seed", type=int)
    ap.add_argument("out")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    make = race if args.task == "race" else pair
    with open(args.out, "w") as f:
        for _ in range(args.count):
            f.write(json.dumps(make(rng)) + "\n")


if __name__ == "__main__":
    main()
