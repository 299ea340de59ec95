"""Demo problem families about strings and words: reversing, counting letters, palindromes, sorting words by a
key, run-length encoding, balanced brackets."""

from __future__ import annotations

import itertools
import string

from valley_assets.demo.family import Family

# The word pool of the word families' tests (ReverseWords, SortByKey).
_WORDS = ("apple", "river", "stone", "cloud", "tiger", "lemon", "ocean", "pixel", "maple", "robot", "candle",
          "zebra", "violet", "anchor", "desert", "falcon", "garden", "island", "jungle", "kettle", "ladder", "magnet",
          "needle", "orbit", "pepper", "quartz", "rocket", "salmon", "tunnel", "velvet", "walnut", "yogurt", "cab",
          "dot", "ink", "owl", "sky", "tea", "arc", "bee")


class ReverseWords(Family):
    name, taco_label = "revwords", "EASY"
    _SEPARATORS = {" ": "a single space", ",": "a comma", "-": "a hyphen", "/": "a slash", " | ": 'the string " | "'}

    def params(self, rng):
        return {"sep": rng.choice(sorted(self._SEPARATORS)), "upper": rng.random() < 0.5,
                "max_words": rng.randint(3, 10)}

    def titles(self, p):
        return ["Reverse the Words", "Words Backwards"]

    def wordings(self, p):
        sep = self._SEPARATORS[p["sep"]]
        tail = " Print every letter in uppercase." if p["upper"] else ""
        return [f"You are given a line of words separated by spaces. Print the words in reverse order, "
                f"separated by {sep}.{tail}",
                f"Read a sentence S. Output its words from last to first, joined with {sep}.{tail}"]

    def input_spec(self, p):
        return "A single line containing the words, separated by single spaces."

    def output_spec(self, p):
        return "Print the words in reverse order on one line."

    def constraints(self, p):
        return [f"1 <= number of words <= {p['max_words']}", "Each word consists of lowercase English letters."]

    def case(self, p, rng):
        return [rng.choice(_WORDS) for _ in range(rng.randint(1, p["max_words"]))]

    def render(self, p, words):
        return " ".join(words) + "\n"

    def expected(self, p, words):
        out = p["sep"].join(words[::-1])
        return out.upper() if p["upper"] else out

    def code(self, p):
        joined = f"{p['sep']!r}.join(reversed(words))"
        return f"words = input().split()\nprint({joined}{'.upper()' if p['upper'] else ''})\n"

    def hints(self, p):
        out = [f"Split the line into words, reverse the list and join with {p['sep']!r}."]
        if p["upper"]:
            out.append("Then convert the result to uppercase with .upper().")
        return out


class CountLetters(Family):
    name, taco_label = "letters", "EASY"

    def params(self, rng):
        return {"letters": "".join(sorted(rng.sample(string.ascii_lowercase, rng.randint(2, 5)))),
                "max_len": rng.randint(5, 30)}

    def titles(self, p):
        return ["Count Special Letters", "Letter Counting"]

    def wordings(self, p):
        listed = ", ".join(p["letters"])
        return [f"You are given a string S of lowercase letters. Count how many characters of S are one of: {listed}.",
                f"The special letters are {listed}. Print the number of positions in S holding a special letter."]

    def input_spec(self, p):
        return "A single line containing S."

    def output_spec(self, p):
        return "Print the count."

    def constraints(self, p):
        return [f"1 <= |S| <= {p['max_len']}", "S consists of lowercase English letters."]

    def case(self, p, rng):
        pool = string.ascii_lowercase + p["letters"] * 3  # make the special letters appear often
        return "".join(rng.choice(pool) for _ in range(rng.randint(1, p["max_len"])))

    def render(self, p, s):
        return s + "\n"

    def expected(self, p, s):
        return str(len([c for c in s if c in set(p["letters"])]))

    def code(self, p):
        return f"s = input().strip()\nprint(sum(1 for c in s if c in {p['letters']!r}))\n"

    def hints(self, p):
        return [f"Loop over the characters and count those in the string {p['letters']!r}."]


class Palindromes(Family):
    name, taco_label = "palin", "EASY"
    _ANSWERS = (("YES", "NO"), ("Yes", "No"), ("true", "false"), ("1", "0"))

    def params(self, rng):
        yes, no = rng.choice(self._ANSWERS)
        return {"yes": yes, "no": no, "ignore_case": rng.random() < 0.5, "max_len": rng.randint(3, 15),
                "max_t": rng.randint(2, 5)}

    def titles(self, p):
        return ["Palindrome Check", "Is It a Palindrome?"]

    def wordings(self, p):
        case_rule = ("Uppercase and lowercase versions of a letter are considered equal." if p["ignore_case"]
                     else "Uppercase and lowercase letters are different.")
        return [f"For each of T strings, print {p['yes']} if it reads the same forwards and backwards and "
                f"{p['no']} otherwise. {case_rule}",
                f"A palindrome is a string equal to its reverse. Answer T queries: print {p['yes']} for a palindrome "
                f"and {p['no']} for anything else. {case_rule}"]

    def input_spec(self, p):
        return "The first line contains T. Each of the next T lines contains a string S of English letters."

    def output_spec(self, p):
        return "Print T lines, one answer per string."

    def constraints(self, p):
        return [f"1 <= T <= {p['max_t']}", f"1 <= |S| <= {p['max_len']}"]

    def case(self, p, rng):
        out = []
        for _ in range(rng.randint(1, p["max_t"])):
            n = rng.randint(1, p["max_len"])
            s = [rng.choice("abcAB") for _ in range(n)]
            if rng.random() < 0.6:  # make a palindrome, sometimes with a case flip on the mirrored half
                s = s[: (n + 1) // 2]
                mirror = [c.swapcase() if rng.random() < 0.3 else c for c in s[: n // 2][::-1]]
                s = s + mirror
            out.append("".join(s))
        return out

    def render(self, p, strings):
        return f"{len(strings)}\n" + "\n".join(strings) + "\n"

    def expected(self, p, strings):
        answers = []
        for s in strings:
            t = s.lower() if p["ignore_case"] else s
            answers.append(p["yes"] if all(t[i] == t[-1 - i] for i in range(len(t))) else p["no"])
        return "\n".join(answers)

    def code(self, p):
        lower = "    s = s.lower()\n" if p["ignore_case"] else ""
        return (f"t = int(input())\nfor _ in range(t):\n    s = input().strip()\n{lower}"
                f"    print({p['yes']!r} if s == s[::-1] else {p['no']!r})\n")

    def hints(self, p):
        out = ["A string is a palindrome when s == s[::-1]."]
        out.append("Lowercase the string first, since case does not matter." if p["ignore_case"]
                   else "Case matters here, so compare the string as it is.")
        return out


class SortByKey(Family):
    name, taco_label = "sortkey", "MEDIUM"
    _KEYS = {"len": ("(len(w), w)", "by length, and words of equal length alphabetically"),
             "last": ("(w[-1], w)", "by their last letter, and ties alphabetically"),
             "vowels": ("(sum((c in 'aeiou' for c in w)), w)",
                        "by the number of vowels (a, e, i, o, u) they contain, and ties alphabetically"),
             "len_desc": ("(-len(w), w)", "from longest to shortest, and words of equal length alphabetically")}

    def params(self, rng):
        return {"key": rng.choice(sorted(self._KEYS)), "out": rng.choice(["lines", "spaces"]),
                "max_n": rng.randint(3, 15)}

    def titles(self, p):
        return ["Sort the Words", "Custom Word Order"]

    def wordings(self, p):
        order = self._KEYS[p["key"]][1]
        where = "one word per line" if p["out"] == "lines" else "on one line separated by spaces"
        return [f"You are given N words. Sort them {order}, and print them {where}.",
                f"Arrange the N given words {order}. Output the result {where}."]

    def input_spec(self, p):
        return "The first line contains N. Each of the next N lines contains a word of lowercase letters."

    def output_spec(self, p):
        return "Print the sorted words."

    def constraints(self, p):
        return [f"1 <= N <= {p['max_n']}"]

    def case(self, p, rng):
        return [rng.choice(_WORDS) for _ in range(rng.randint(1, p["max_n"]))]

    def render(self, p, words):
        return f"{len(words)}\n" + "\n".join(words) + "\n"

    def expected(self, p, words):
        keys = {"len": lambda w: (len(w), w), "last": lambda w: (w[-1], w),
                "vowels": lambda w: (len([c for c in w if c in "aeiou"]), w), "len_desc": lambda w: (-len(w), w)}
        ordered = sorted(words, key=keys[p["key"]])
        return ("\n" if p["out"] == "lines" else " ").join(ordered)

    def code(self, p):
        sep = "'\\n'" if p["out"] == "lines" else "' '"
        return (f"n = int(input())\nwords = [input().strip() for _ in range(n)]\n"
                f"words.sort(key=lambda w: {self._KEYS[p['key']][0]})\nprint({sep}.join(words))\n")

    def hints(self, p):
        return [f"Sort with a key tuple {self._KEYS[p['key']][0]}: the tuple's second part breaks ties.",
                "Then print them " + ("one per line." if p["out"] == "lines" else "joined by spaces.")]


class RunLength(Family):
    name, taco_label = "rle", "MEDIUM"

    def params(self, rng):
        return {"order": rng.choice(["char_count", "count_char"]), "skip_one": rng.random() < 0.5,
                "max_len": rng.randint(4, 30)}

    def titles(self, p):
        return ["Run-Length Encoding", "Compress the String"]

    def wordings(self, p):
        unit = "the letter followed by the run length" if p["order"] == "char_count" else \
            "the run length followed by the letter"
        skip = " A run of length 1 is written as the letter alone." if p["skip_one"] else ""
        example = {("char_count", False): "aab -> a2b1", ("char_count", True): "aab -> a2b",
                   ("count_char", False): "aab -> 2a1b", ("count_char", True): "aab -> 2ab"}[(p["order"], p["skip_one"])]
        return [f"Compress a string by replacing each maximal run of equal letters with {unit}.{skip} "
                f"For example, {example}.",
                f"Run-length encode S: every block of identical consecutive letters becomes {unit}.{skip} "
                f"Example: {example}."]

    def input_spec(self, p):
        return "A single line containing S."

    def output_spec(self, p):
        return "Print the encoded string."

    def constraints(self, p):
        return [f"1 <= |S| <= {p['max_len']}", "S consists of lowercase English letters."]

    def case(self, p, rng):
        s = ""
        while len(s) < rng.randint(1, p["max_len"]):
            s += rng.choice("abcd") * rng.randint(1, 4)
        return s[: p["max_len"]]

    def render(self, p, s):
        return s + "\n"

    def expected(self, p, s):
        parts = []
        for ch, run in itertools.groupby(s):
            count = len(list(run))
            num = "" if p["skip_one"] and count == 1 else str(count)
            parts.append(ch + num if p["order"] == "char_count" else num + ch)
        return "".join(parts)

    def code(self, p):
        count = "(str(j - i) if j - i > 1 else '')" if p["skip_one"] else "str(j - i)"
        piece = f"s[i] + {count}" if p["order"] == "char_count" else f"{count} + s[i]"
        return ("s = input().strip()\nout = []\ni = 0\nwhile i < len(s):\n    j = i\n"
                "    while j < len(s) and s[j] == s[i]:\n        j += 1\n"
                f"    out.append({piece})\n    i = j\nprint(''.join(out))\n")

    def hints(self, p):
        return ["Scan with two pointers: j moves while the letter repeats, so the run length is j - i.",
                "Runs of length 1 drop the number." if p["skip_one"] else "Every run keeps its number, even 1."]


class Brackets(Family):
    name = "brackets"
    _PAIRS = ("()", "[]", "{}")

    def taco(self, p):
        return "VERY_HARD" if p["mode"] == "longest" else "HARD"

    def params(self, rng):
        return {"mode": rng.choice(["depth", "additions", "longest"]), "pair": rng.choice(self._PAIRS),
                "max_len": rng.randint(6, 20)}

    def titles(self, p):
        first = {"depth": "Nesting Depth", "additions": "Fix the Brackets", "longest": "Longest Balanced Part"}
        return [first[p["mode"]], "Bracket Sequence"]

    def wordings(self, p):
        o, c = p["pair"]
        task = {"depth": f"S is balanced. Print its maximum nesting depth (the most {o} open at the same time).",
                "additions": f"Print the minimum number of characters {o} or {c} that must be inserted to make S "
                             "balanced.",
                "longest": "Print the length of the longest contiguous substring of S that is balanced."}[p["mode"]]
        return [f"You are given a string S made of the characters {o} and {c}. {task}",
                f"A bracket sequence S uses only {o} and {c}. {task}"]

    def input_spec(self, p):
        return "A single line containing S."

    def output_spec(self, p):
        return "Print the answer."

    def constraints(self, p):
        return [f"1 <= |S| <= {p['max_len']}"]

    def case(self, p, rng):
        o, c = p["pair"]
        if p["mode"] == "depth":  # a random balanced string
            s, opened = "", 0
            half = rng.randint(1, p["max_len"] // 2)
            for _ in range(2 * half):
                can_open = len(s) + opened < 2 * half
                if opened == 0 or (can_open and rng.random() < 0.5):
                    s, opened = s + o, opened + 1
                else:
                    s, opened = s + c, opened - 1
            return s
        return "".join(rng.choice((o, c)) for _ in range(rng.randint(1, p["max_len"])))

    def render(self, p, s):
        return s + "\n"

    def expected(self, p, s):
        o, c = p["pair"]

        def balanced(t: str) -> bool:
            while o + c in t:
                t = t.replace(o + c, "")
            return t == ""

        if p["mode"] == "depth":
            return str(max(s[:i].count(o) - s[:i].count(c) for i in range(len(s) + 1)))
        if p["mode"] == "additions":
            t = s
            while o + c in t:
                t = t.replace(o + c, "")
            return str(len(t))  # what is left after cancelling pairs is a run of closers then openers
        return str(max([j - i for i in range(len(s)) for j in range(i + 2, len(s) + 1, 2) if balanced(s[i:j])],
                       default=0))

    def code(self, p):
        o, c = p["pair"]
        if p["mode"] == "depth":
            return ("s = input().strip()\ndepth = 0\nbest = 0\nfor ch in s:\n"
                    f"    if ch == {o!r}:\n        depth += 1\n        best = max(best, depth)\n"
                    "    else:\n        depth -= 1\nprint(best)\n")
        if p["mode"] == "additions":
            return ("s = input().strip()\nopened = 0\nadd = 0\nfor ch in s:\n"
                    f"    if ch == {o!r}:\n        opened += 1\n    elif opened > 0:\n        opened -= 1\n"
                    "    else:\n        add += 1\nprint(add + opened)\n")
        return ("s = input().strip()\nstack = [-1]\nbest = 0\nfor i, ch in enumerate(s):\n"
                f"    if ch == {o!r}:\n        stack.append(i)\n    else:\n        stack.pop()\n"
                "        if not stack:\n            stack.append(i)\n        else:\n"
                "            best = max(best, i - stack[-1])\nprint(best)\n")

    def hints(self, p):
        o, c = p["pair"]
        return {"depth": [f"Track the number of open {o}; the answer is its maximum."],
                "additions": [f"Match each {c} with an earlier unmatched {o}; every {c} without a partner needs an "
                              f"insertion, and so does every {o} left open at the end."],
                "longest": ["Keep a stack of indices with a sentinel -1 for the last unmatched position.",
                            "After each match, the balanced length is i - stack[-1]."]}[p["mode"]]
