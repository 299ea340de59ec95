"""The demo's programming problems: seeded instances of ~20 small problem families, in LiveCodeBench's record schema.

Each family (sum of multiples, reverse words, FizzBuzz variants, max subarray, prefix sums, coin change, …) has
parameters that show up in its statement (a divisor, an output word, an index base, a modulus, the constraints), a
few wordings, a test-case generator, a *reference function* that computes expected outputs from structured inputs,
and the *solution source* the demo teacher writes. Expected outputs come from the reference functions; the test
suite runs the solution sources against them, so the two implementations check each other.

Held-out evaluation: every parameter tuple is assigned to the train or the eval side by a seeded hash, so eval
problems are instances of the same families (a tiny student has something to learn) with parameters never seen in
training (no eval statement appears in training). Problem `k` of a family on a side depends only on (seed, side,
family, k), so growing `n_train` or `n_eval` only appends problems, and a problem can be regenerated from its
`question_id` (`demo<seed>-<t|e>-<family>-<k>`): that is how the teacher finds the solution it writes.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import random
import re
import string
from bisect import bisect_left, bisect_right
from datetime import date, timedelta
from functools import cache, lru_cache

from valley_assets.data.schema import TACO_TO_LCB_DIFFICULTY

PLATFORM = "valley-demo"
SIDES = ("train", "eval")
EVAL_SHARE = 4  # one parameter tuple in EVAL_SHARE belongs to the eval side
N_PUBLIC_TESTS = 1  # the statement shows one sample (the shortest test): every token costs the tiny student compute
N_PRIVATE_TESTS = 7
_TRAIN_DATES = (date(2023, 1, 1), 540)  # (first day, span in days): training problems predate the eval window
_EVAL_DATES = (date(2024, 8, 1), 180)
_QUESTION_ID_RE = re.compile(r"^demo(\d+)-([te])-([a-z]+)-(\d+)$")
_WORDS = ("apple", "river", "stone", "cloud", "tiger", "lemon", "ocean", "pixel", "maple", "robot", "candle",
          "zebra", "violet", "anchor", "desert", "falcon", "garden", "island", "jungle", "kettle", "ladder", "magnet",
          "needle", "orbit", "pepper", "quartz", "rocket", "salmon", "tunnel", "velvet", "walnut", "yogurt", "cab",
          "dot", "ink", "owl", "sky", "tea", "arc", "bee")


def normalise_code(source: str) -> str:
    """One canonical layout (ast.unparse, no blank lines) so that correct and mutated solutions look alike to a student."""
    return "\n".join(line for line in ast.unparse(ast.parse(source)).splitlines() if line.strip())


# --------------------------------------------------------------------------------------------------------------------
# Families. Each one is a class with: name (a slug used in question ids), taco(p) difficulty, params(rng),
# wordings(p) (statement bodies), titles(p), case(p, rng) (one structured test input), render(p, case) (stdin text or
# functional argument lines), expected(p, case) (reference answer), code(p) (solution source), hints(p) (reasoning
# sentences for the teacher). Functional families also have func_name, arg_names, signature and returns.
# --------------------------------------------------------------------------------------------------------------------


class Family:
    name = ""
    taco_label = "EASY"
    functional = False
    func_name: str | None = None

    def taco(self, p: dict) -> str:
        return self.taco_label

    def input_spec(self, p: dict) -> str:
        raise NotImplementedError

    def output_spec(self, p: dict) -> str:
        raise NotImplementedError

    def constraints(self, p: dict) -> list[str]:
        raise NotImplementedError


def _ints(values) -> str:
    return " ".join(str(v) for v in values)


class SumMultiples(Family):
    name, taco_label = "summult", "EASY"

    def params(self, rng):
        return {"k": rng.randint(2, 9), "max_n": rng.randint(4, 12), "bound": rng.choice([20, 50, 100, 1000])}

    def titles(self, p):
        return [f"Sum of Multiples of {p['k']}", f"Multiples of {p['k']}"]

    def wordings(self, p):
        k = p["k"]
        return [f"You are given a list of N integers. Print the sum of the integers that are divisible by {k}.",
                f"Takahashi has N integers A_1, ..., A_N. Find the total of all A_i that are multiples of {k}. "
                "If there are none, the answer is 0.",
                f"Given N numbers, add up every number that is a multiple of {k} and print the result."]

    def input_spec(self, p):
        return "The first line contains N. The second line contains A_1 A_2 ... A_N separated by spaces."

    def output_spec(self, p):
        return "Print the sum."

    def constraints(self, p):
        return [f"1 <= N <= {p['max_n']}", f"-{p['bound']} <= A_i <= {p['bound']}"]

    def case(self, p, rng):
        return [rng.randint(-p["bound"], p["bound"]) for _ in range(rng.randint(1, p["max_n"]))]

    def render(self, p, a):
        return f"{len(a)}\n{_ints(a)}\n"

    def expected(self, p, a):
        return str(sum(x for x in a if x % p["k"] == 0))

    def code(self, p):
        return ("n = int(input())\na = list(map(int, input().split()))\n"
                f"print(sum(x for x in a if x % {p['k']} == 0))\n")

    def hints(self, p):
        return [f"A number x is a multiple of {p['k']} exactly when x % {p['k']} == 0.",
                "Negative multiples count too, and Python's % gives 0 for them.",
                "A generator expression inside sum() handles it, and an empty sum is 0."]


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


class FizzVariant(Family):
    name, taco_label = "fizz", "EASY"
    _WORDS = ("Fizz", "Buzz", "Foo", "Bar", "Ping", "Pong", "Tick", "Tock", "Zap", "Bop")

    def params(self, rng):
        a, b = sorted(rng.sample(range(2, 10), 2))
        w1, w2 = rng.sample(self._WORDS, 2)
        return {"a": a, "b": b, "w1": w1, "w2": w2, "max_n": rng.randint(5, 30)}

    def titles(self, p):
        return [f"{p['w1']}{p['w2']}", f"{p['w1']} and {p['w2']}"]

    def wordings(self, p):
        a, b, w1, w2 = p["a"], p["b"], p["w1"], p["w2"]
        return [f"For each integer i from 1 to N, print {w1}{w2} if i is divisible by both {a} and {b}, {w1} if it "
                f"is divisible only by {a}, {w2} if it is divisible only by {b}, and i itself otherwise.",
                f"Count from 1 to N. Multiples of {a} are replaced by {w1}, multiples of {b} by {w2}, and numbers "
                f"divisible by both become {w1}{w2}. Print one line per number."]

    def input_spec(self, p):
        return "A single integer N."

    def output_spec(self, p):
        return "Print N lines."

    def constraints(self, p):
        return [f"1 <= N <= {p['max_n']}"]

    def case(self, p, rng):
        return rng.randint(1, p["max_n"])

    def render(self, p, n):
        return f"{n}\n"

    def expected(self, p, n):
        lines = []
        for i in range(1, n + 1):
            word = (p["w1"] if i % p["a"] == 0 else "") + (p["w2"] if i % p["b"] == 0 else "")
            lines.append(word or str(i))
        return "\n".join(lines)

    def code(self, p):
        a, b, w1, w2 = p["a"], p["b"], p["w1"], p["w2"]
        return (f"n = int(input())\nfor i in range(1, n + 1):\n    if i % {a} == 0 and i % {b} == 0:\n"
                f"        print('{w1}{w2}')\n    elif i % {a} == 0:\n        print('{w1}')\n"
                f"    elif i % {b} == 0:\n        print('{w2}')\n    else:\n        print(i)\n")

    def hints(self, p):
        return [f"The combined case (divisible by {p['a']} and {p['b']}) must be checked first.",
                "Then the single cases, and finally print the number itself."]


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


class MinMax(Family):
    name, taco_label = "minmax", "EASY"

    def params(self, rng):
        return {"mode": rng.choice(["diff", "sum", "pair"]), "max_n": rng.randint(2, 12),
                "bound": rng.choice([10, 100, 1000, 10**4])}

    def titles(self, p):
        return ["Largest and Smallest", "Extremes"]

    def wordings(self, p):
        what = {"diff": "the difference between the largest and the smallest value",
                "sum": "the sum of the largest and the smallest value",
                "pair": "the largest value and the smallest value, separated by a space"}[p["mode"]]
        return [f"Given N integers, print {what}.", f"You are given an array A of length N. Output {what}."]

    def input_spec(self, p):
        return "The first line contains N. The second line contains the N integers."

    def output_spec(self, p):
        return "Print the answer."

    def constraints(self, p):
        return [f"1 <= N <= {p['max_n']}", f"-{p['bound']} <= A_i <= {p['bound']}"]

    def case(self, p, rng):
        return [rng.randint(-p["bound"], p["bound"]) for _ in range(rng.randint(1, p["max_n"]))]

    def render(self, p, a):
        return f"{len(a)}\n{_ints(a)}\n"

    def expected(self, p, a):
        hi, lo = sorted(a)[-1], sorted(a)[0]
        return {"diff": str(hi - lo), "sum": str(hi + lo), "pair": f"{hi} {lo}"}[p["mode"]]

    def code(self, p):
        out = {"diff": "print(max(a) - min(a))", "sum": "print(max(a) + min(a))", "pair": "print(max(a), min(a))"}
        return "n = int(input())\na = list(map(int, input().split()))\n" + out[p["mode"]] + "\n"

    def hints(self, p):
        return ["Python's max() and min() give the extremes directly.",
                {"diff": "Subtract the minimum from the maximum.", "sum": "Add them up.",
                 "pair": "Print the maximum first, then the minimum."}[p["mode"]]]


class PowerSum(Family):
    name, taco_label, functional, func_name = "powsum", "EASY", True, "sumOfPowers"
    arg_names, signature, returns = ("nums",), "nums: List[int]", "int"
    _SLICES = {"all": "nums", "even": "nums[::2]", "odd": "nums[1::2]"}

    def params(self, rng):
        return {"power": rng.randint(1, 4), "which": rng.choice(sorted(self._SLICES)), "max_n": rng.randint(1, 10),
                "bound": rng.choice([5, 10, 50])}

    def titles(self, p):
        return ["Sum of Powers", "Powered Sum"]

    def wordings(self, p):
        where = {"all": "every index i", "even": "every even index i (0-indexed)",
                 "odd": "every odd index i (0-indexed)"}[p["which"]]
        return [f"You are given an integer array nums. Return the sum of nums[i] raised to the power {p['power']} "
                f"over {where}.",
                f"Given nums, compute the total of nums[i]^{p['power']} taken over {where}, and return it."]

    def constraints(self, p):
        return [f"1 <= nums.length <= {p['max_n']}", f"-{p['bound']} <= nums[i] <= {p['bound']}"]

    def case(self, p, rng):
        return [[rng.randint(-p["bound"], p["bound"]) for _ in range(rng.randint(1, p["max_n"]))]]

    def expected(self, p, args):
        nums = args[0]
        start, step = {"all": (0, 1), "even": (0, 2), "odd": (1, 2)}[p["which"]]
        return sum(nums[i] ** p["power"] for i in range(start, len(nums), step))

    def code(self, p):
        return (f"class Solution:\n    def sumOfPowers(self, nums: List[int]) -> int:\n"
                f"        return sum(x ** {p['power']} for x in {self._SLICES[p['which']]})\n")

    def hints(self, p):
        return [f"Select the elements with the slice {self._SLICES[p['which']]} and raise each to {p['power']}."]


class MaxSubarray(Family):
    name, taco_label = "kadane", "MEDIUM"

    def params(self, rng):
        return {"allow_empty": rng.random() < 0.5, "max_n": rng.randint(3, 20), "bound": rng.choice([10, 100, 1000])}

    def titles(self, p):
        return ["Maximum Subarray Sum", "Best Contiguous Segment"]

    def wordings(self, p):
        rule = ("The empty subarray is allowed and has sum 0." if p["allow_empty"]
                else "The subarray must contain at least one element.")
        return [f"Given an array of N integers, find the largest possible sum of a contiguous subarray. {rule}",
                f"Alice picks a contiguous segment of the array A and scores the sum of its elements. Print the best "
                f"score she can get. {rule}"]

    def input_spec(self, p):
        return "The first line contains N. The second line contains A_1 ... A_N."

    def output_spec(self, p):
        return "Print the maximum sum."

    def constraints(self, p):
        return [f"1 <= N <= {p['max_n']}", f"-{p['bound']} <= A_i <= {p['bound']}"]

    def case(self, p, rng):
        return [rng.randint(-p["bound"], p["bound"]) for _ in range(rng.randint(1, p["max_n"]))]

    def render(self, p, a):
        return f"{len(a)}\n{_ints(a)}\n"

    def expected(self, p, a):
        best = max(sum(a[i:j]) for i in range(len(a)) for j in range(i + 1, len(a) + 1))
        return str(max(best, 0) if p["allow_empty"] else best)

    def code(self, p):
        if p["allow_empty"]:
            return ("n = int(input())\na = list(map(int, input().split()))\nbest = 0\ncur = 0\nfor x in a:\n"
                    "    cur = max(0, cur + x)\n    best = max(best, cur)\nprint(best)\n")
        return ("n = int(input())\na = list(map(int, input().split()))\nbest = a[0]\ncur = 0\nfor x in a:\n"
                "    cur = max(x, cur + x)\n    best = max(best, cur)\nprint(best)\n")

    def hints(self, p):
        return ["Kadane's algorithm: keep the best sum of a subarray ending at the current position.",
                "When the running sum is worse than starting fresh, restart it." if not p["allow_empty"]
                else "Since the empty subarray counts, the running sum never goes below 0."]


class GcdPairs(Family):
    name, taco_label = "gcdpairs", "MEDIUM"

    def params(self, rng):
        return {"op": rng.choice(["gcd", "lcm"]), "max_q": rng.randint(2, 8), "bound": rng.choice([100, 500, 1000, 5000, 10**4])}

    def titles(self, p):
        return ["Greatest Common Divisors" if p["op"] == "gcd" else "Least Common Multiples", "Pair Queries"]

    def wordings(self, p):
        what = "greatest common divisor" if p["op"] == "gcd" else "least common multiple"
        return [f"You are given Q pairs of positive integers (a, b). For each pair print the {what} of a and b.",
                f"Answer Q queries. Each query gives two numbers a and b; output their {what}."]

    def input_spec(self, p):
        return "The first line contains Q. Each of the next Q lines contains a and b."

    def output_spec(self, p):
        return "Print Q lines."

    def constraints(self, p):
        return [f"1 <= Q <= {p['max_q']}", f"1 <= a, b <= {p['bound']}"]

    def case(self, p, rng):
        pairs = []
        for _ in range(rng.randint(1, p["max_q"])):
            g = rng.randint(1, max(1, p["bound"] // 20))  # a shared factor so the answers are interesting
            pairs.append((g * rng.randint(1, p["bound"] // g), g * rng.randint(1, p["bound"] // g)))
        return pairs

    def render(self, p, pairs):
        return f"{len(pairs)}\n" + "".join(f"{a} {b}\n" for a, b in pairs)

    def expected(self, p, pairs):
        def gcd(a, b):
            while b:
                a, b = b, a % b
            return a

        return "\n".join(str(gcd(a, b) if p["op"] == "gcd" else a * b // gcd(a, b)) for a, b in pairs)

    def code(self, p):
        out = "math.gcd(a, b)" if p["op"] == "gcd" else "a * b // math.gcd(a, b)"
        return (f"import math\nq = int(input())\nfor _ in range(q):\n    a, b = map(int, input().split())\n"
                f"    print({out})\n")

    def hints(self, p):
        if p["op"] == "gcd":
            return ["math.gcd computes the greatest common divisor directly."]
        return ["The least common multiple is a * b // gcd(a, b).", "Integer division keeps it exact."]


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


class RangeSums(Family):
    name, taco_label = "rangesum", "MEDIUM_HARD"

    def params(self, rng):
        return {"base": rng.choice([0, 1]), "max_n": rng.randint(3, 12), "max_q": rng.randint(1, 5),
                "bound": rng.choice([10, 100, 1000])}

    def titles(self, p):
        return ["Range Sum Queries", "Segment Totals"]

    def wordings(self, p):
        idx = f"{p['base']}-indexed"
        return [f"You are given an array A of N integers ({idx}) and Q queries. Each query gives l and r; print "
                f"A_l + A_(l+1) + ... + A_r.",
                f"Answer Q questions about the array A (positions are {idx}): for a query (l, r), output the sum of "
                f"the elements from position l to position r inclusive."]

    def input_spec(self, p):
        return "The first line contains N and Q. The second line contains A. Each of the next Q lines has l and r."

    def output_spec(self, p):
        return "Print Q lines."

    def constraints(self, p):
        lo = p["base"]
        return [f"1 <= N <= {p['max_n']}", f"1 <= Q <= {p['max_q']}", f"{lo} <= l <= r <= N{'-1' if lo == 0 else ''}",
                f"|A_i| <= {p['bound']}"]

    def case(self, p, rng):
        n = rng.randint(1, p["max_n"])
        a = [rng.randint(-p["bound"], p["bound"]) for _ in range(n)]
        queries = []
        for _ in range(rng.randint(1, p["max_q"])):
            lo, hi = sorted((rng.randrange(n), rng.randrange(n)))
            queries.append((lo + p["base"], hi + p["base"]))
        return a, queries

    def render(self, p, case):
        a, queries = case
        return f"{len(a)} {len(queries)}\n{_ints(a)}\n" + "".join(f"{lo} {hi}\n" for lo, hi in queries)

    def expected(self, p, case):
        a, queries = case
        return "\n".join(str(sum(a[lo - p["base"]: hi - p["base"] + 1])) for lo, hi in queries)

    def code(self, p):
        answer = "pre[r] - pre[l - 1]" if p["base"] == 1 else "pre[r + 1] - pre[l]"
        return ("n, q = map(int, input().split())\na = list(map(int, input().split()))\npre = [0]\nfor x in a:\n"
                "    pre.append(pre[-1] + x)\nfor _ in range(q):\n    l, r = map(int, input().split())\n"
                f"    print({answer})\n")

    def hints(self, p):
        return ["Prefix sums: pre[i] is the sum of the first i elements, so a range is a difference of two of them.",
                "The indices are 1-based, so the answer is pre[r] - pre[l - 1]." if p["base"] == 1
                else "The indices are 0-based, so the answer is pre[r + 1] - pre[l]."]


class PairCount(Family):
    name, taco_label, functional, func_name = "pairs", "MEDIUM", True, "countPairs"
    arg_names, signature, returns = ("nums", "target"), "nums: List[int], target: int", "int"
    _RELATIONS = {"==": "equal to", "<": "strictly less than", ">": "strictly greater than"}

    def params(self, rng):
        return {"rel": rng.choice(sorted(self._RELATIONS)), "max_n": rng.randint(2, 10), "bound": rng.choice([5, 10, 50])}

    def titles(self, p):
        return ["Count Pairs", "Pairs With Target Sum"]

    def wordings(self, p):
        rel = self._RELATIONS[p["rel"]]
        return [f"Given an integer array nums and an integer target, return the number of index pairs (i, j) with "
                f"i < j such that nums[i] + nums[j] is {rel} target.",
                f"Count the pairs of positions i < j in nums whose values add up to a number {rel} target."]

    def constraints(self, p):
        return [f"1 <= nums.length <= {p['max_n']}", f"-{p['bound']} <= nums[i], target <= {p['bound']}"]

    def case(self, p, rng):
        nums = [rng.randint(-p["bound"], p["bound"]) for _ in range(rng.randint(1, p["max_n"]))]
        return [nums, rng.randint(-p["bound"], p["bound"])]

    def expected(self, p, args):
        nums, target = args
        test = {"==": target.__eq__, "<": target.__gt__, ">": target.__lt__}[p["rel"]]
        return sum(1 for x, y in itertools.combinations(nums, 2) if test(x + y))

    def code(self, p):
        return ("class Solution:\n    def countPairs(self, nums: List[int], target: int) -> int:\n        count = 0\n"
                "        for i in range(len(nums)):\n            for j in range(i + 1, len(nums)):\n"
                f"                if nums[i] + nums[j] {p['rel']} target:\n                    count += 1\n"
                "        return count\n")

    def hints(self, p):
        return ["The array is small, so checking every pair with two nested loops is fine.",
                f"Count a pair when nums[i] + nums[j] {p['rel']} target."]


class DigitSumBase(Family):
    name, taco_label = "digitsum", "MEDIUM"

    def params(self, rng):
        return {"base": rng.randint(2, 10), "max_t": rng.randint(1, 5), "bound": rng.choice([100, 10**4, 10**6])}

    def titles(self, p):
        return [f"Digit Sum in Base {p['base']}", "Digits of a Number"]

    def wordings(self, p):
        b = p["base"]
        return [f"For each of T integers x, write x in base {b} and print the sum of its digits.",
                f"Answer T queries: given x, print the sum of the base-{b} digits of x."]

    def input_spec(self, p):
        return "The first line contains T. Each of the next T lines contains x."

    def output_spec(self, p):
        return "Print T lines."

    def constraints(self, p):
        return [f"1 <= T <= {p['max_t']}", f"0 <= x <= {p['bound']}"]

    def case(self, p, rng):
        return [rng.randint(0, p["bound"]) for _ in range(rng.randint(1, p["max_t"]))]

    def render(self, p, xs):
        return f"{len(xs)}\n" + "".join(f"{x}\n" for x in xs)

    def expected(self, p, xs):
        def digits(x):
            return [x] if x < p["base"] else digits(x // p["base"]) + [x % p["base"]]

        return "\n".join(str(sum(digits(x))) for x in xs)

    def code(self, p):
        b = p["base"]
        return ("t = int(input())\nfor _ in range(t):\n    x = int(input())\n    s = 0\n    while x > 0:\n"
                f"        s += x % {b}\n        x //= {b}\n    print(s)\n")

    def hints(self, p):
        return [f"The last base-{p['base']} digit is x % {p['base']}; dividing by {p['base']} drops it.",
                "Repeat until x becomes 0; x = 0 gives digit sum 0."]


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


class KthDistinct(Family):
    name, taco_label, functional, func_name = "kthmax", "MEDIUM", True, "kthDistinctMax"
    arg_names, signature, returns = ("nums",), "nums: List[int]", "int"

    def params(self, rng):
        return {"k": rng.randint(2, 4), "fallback": rng.choice([-1, 0]), "max_n": rng.randint(2, 10),
                "bound": rng.choice([5, 20, 100])}

    def titles(self, p):
        return [f"K-th Largest Distinct Value (k = {p['k']})", "Distinct Maximum"]

    def wordings(self, p):
        k, fb = p["k"], p["fallback"]
        return [f"Given an integer array nums, return the {k}-th largest distinct value in nums. If nums has fewer "
                f"than {k} distinct values, return {fb}.",
                f"Among the distinct values of nums, sorted from largest to smallest, return the one at position {k} "
                f"(1-indexed), or {fb} when there are fewer than {k} distinct values."]

    def constraints(self, p):
        return [f"1 <= nums.length <= {p['max_n']}", f"-{p['bound']} <= nums[i] <= {p['bound']}"]

    def case(self, p, rng):
        return [[rng.randint(-p["bound"], p["bound"]) for _ in range(rng.randint(1, p["max_n"]))]]

    def expected(self, p, args):
        distinct = []
        for x in sorted(args[0], reverse=True):
            if x not in distinct:
                distinct.append(x)
        return distinct[p["k"] - 1] if len(distinct) >= p["k"] else p["fallback"]

    def code(self, p):
        k = p["k"]
        return (f"class Solution:\n    def kthDistinctMax(self, nums: List[int]) -> int:\n"
                f"        vals = sorted(set(nums), reverse=True)\n"
                f"        return vals[{k - 1}] if len(vals) >= {k} else {p['fallback']}\n")

    def hints(self, p):
        return ["Remove duplicates with set(), then sort in decreasing order.",
                f"The answer is at index {p['k'] - 1}; if the list is shorter, return {p['fallback']}."]


class GridSums(Family):
    name, taco_label = "grid", "MEDIUM_HARD"
    _MODES = {"rows": "the sum of every row, separated by spaces",
              "cols": "the sum of every column, separated by spaces",
              "max_row": "the largest row sum", "max_col": "the largest column sum"}

    def params(self, rng):
        return {"mode": rng.choice(sorted(self._MODES)), "max_r": rng.randint(1, 5), "max_c": rng.randint(1, 5),
                "bound": rng.choice([9, 100])}

    def titles(self, p):
        return ["Grid Sums", "Rows and Columns"]

    def wordings(self, p):
        return [f"You are given an R x C grid of integers. Print {self._MODES[p['mode']]}.",
                f"A table has R rows and C columns of numbers. Output {self._MODES[p['mode']]}."]

    def input_spec(self, p):
        return "The first line contains R and C. Each of the next R lines contains C integers."

    def output_spec(self, p):
        return "Print the answer on one line."

    def constraints(self, p):
        return [f"1 <= R <= {p['max_r']}", f"1 <= C <= {p['max_c']}", f"-{p['bound']} <= value <= {p['bound']}"]

    def case(self, p, rng):
        r, c = rng.randint(1, p["max_r"]), rng.randint(1, p["max_c"])
        return [[rng.randint(-p["bound"], p["bound"]) for _ in range(c)] for _ in range(r)]

    def render(self, p, g):
        return f"{len(g)} {len(g[0])}\n" + "".join(_ints(row) + "\n" for row in g)

    def expected(self, p, g):
        rows, cols = [sum(r) for r in g], [sum(c) for c in zip(*g, strict=False)]
        return {"rows": _ints(rows), "cols": _ints(cols), "max_row": str(max(rows)),
                "max_col": str(max(cols))}[p["mode"]]

    def code(self, p):
        out = {"rows": "' '.join((str(sum(row)) for row in g))",
               "cols": "' '.join((str(sum((g[i][j] for i in range(r)))) for j in range(c)))",
               "max_row": "max((sum(row) for row in g))",
               "max_col": "max((sum((g[i][j] for i in range(r))) for j in range(c)))"}[p["mode"]]
        return ("r, c = map(int, input().split())\ng = [list(map(int, input().split())) for _ in range(r)]\n"
                f"print({out})\n")

    def hints(self, p):
        return ["Read the grid row by row into a list of lists.",
                "A column sum adds g[i][j] over all rows i." if "col" in p["mode"] else "A row sum is sum(row)."]


class LongestIncreasing(Family):
    name, taco_label = "lis", "HARD"

    def params(self, rng):
        return {"strict": rng.random() < 0.5, "max_n": rng.randint(3, 20), "bound": rng.choice([10, 100, 1000])}

    def titles(self, p):
        return ["Longest Increasing Subsequence", "Growing Subsequence"]

    def wordings(self, p):
        what = "strictly increasing" if p["strict"] else "non-decreasing"
        return [f"Given a sequence A of N integers, print the length of its longest {what} subsequence.",
                f"Remove as few elements of A as possible so that the rest is {what}. Print how many remain."]

    def input_spec(self, p):
        return "The first line contains N. The second line contains A_1 ... A_N."

    def output_spec(self, p):
        return "Print the length."

    def constraints(self, p):
        return [f"1 <= N <= {p['max_n']}", f"1 <= A_i <= {p['bound']}"]

    def case(self, p, rng):
        hi = min(p["bound"], rng.choice([5, p["bound"]]))  # small values give ties, where strictness matters
        return [rng.randint(1, hi) for _ in range(rng.randint(1, p["max_n"]))]

    def render(self, p, a):
        return f"{len(a)}\n{_ints(a)}\n"

    def expected(self, p, a):
        tails: list[int] = []  # patience sorting, a different algorithm from the solution's O(n^2) DP
        for x in a:
            i = (bisect_left if p["strict"] else bisect_right)(tails, x)
            tails[i:i + 1] = [x]
        return str(len(tails))

    def code(self, p):
        cmp = "<" if p["strict"] else "<="
        return ("n = int(input())\na = list(map(int, input().split()))\ndp = [1] * n\nfor i in range(n):\n"
                f"    for j in range(i):\n        if a[j] {cmp} a[i]:\n            dp[i] = max(dp[i], dp[j] + 1)\n"
                "print(max(dp))\n")

    def hints(self, p):
        return ["dp[i] = length of the best subsequence ending at i; extend any earlier j with "
                f"a[j] {'<' if p['strict'] else '<='} a[i].", "N is small, so the O(N^2) double loop is fine."]


class CoinWays(Family):
    name, functional, func_name = "coins", True, "countWays"
    arg_names, signature, returns = ("coins", "amount"), "coins: List[int], amount: int", "int"
    _MODS = (10**9 + 7, 998244353, 10007, 1000003, 9973, 65537)

    def taco(self, p):
        return "VERY_HARD" if p["ordered"] else "HARD"

    def params(self, rng):
        return {"ordered": rng.random() < 0.5, "mod": rng.choice(self._MODS), "max_amount": rng.randint(5, 60)}

    def titles(self, p):
        return ["Coin Change Ways", "Ways to Pay"]

    def wordings(self, p):
        order = ("Different orders of the same coins count as different ways." if p["ordered"]
                 else "The order of the coins does not matter.")
        return [f"You have unlimited coins of each value in coins. Return the number of ways to make exactly amount, "
                f"modulo {p['mod']}. {order}",
                f"Count the ways to pay amount using any number of coins with the given values (each value can be "
                f"used many times). {order} Return the count modulo {p['mod']}."]

    def constraints(self, p):
        return ["1 <= coins.length <= 4", "1 <= coins[i] <= 10, all distinct", f"0 <= amount <= {p['max_amount']}"]

    def case(self, p, rng):
        return [sorted(rng.sample(range(1, 11), rng.randint(1, 4))), rng.randint(0, p["max_amount"])]

    def expected(self, p, args):
        coins, amount = args

        @cache
        def ways(rest: int, smallest_index: int) -> int:
            if rest == 0:
                return 1
            start = 0 if p["ordered"] else smallest_index
            return sum(ways(rest - coins[i], i) for i in range(start, len(coins)) if coins[i] <= rest)

        return ways(amount, 0) % p["mod"]

    def code(self, p):
        head = ("class Solution:\n    def countWays(self, coins: List[int], amount: int) -> int:\n"
                "        dp = [0] * (amount + 1)\n        dp[0] = 1\n")
        if p["ordered"]:
            return head + ("        for v in range(1, amount + 1):\n            for c in coins:\n"
                           f"                if c <= v:\n                    dp[v] = (dp[v] + dp[v - c]) % {p['mod']}\n"
                           "        return dp[amount]\n")
        return head + ("        for c in coins:\n            for v in range(c, amount + 1):\n"
                       f"                dp[v] = (dp[v] + dp[v - c]) % {p['mod']}\n        return dp[amount]\n")

    def hints(self, p):
        if p["ordered"]:
            return ["Order matters, so loop over the amount outside and the coins inside.",
                    f"dp[v] sums dp[v - c] over coins c <= v, reduced modulo {p['mod']}."]
        return ["Order does not matter, so loop over the coins outside: each coin is added to the combinations once.",
                f"dp[v] += dp[v - c], reduced modulo {p['mod']}."]


class PrimeRange(Family):
    name, taco_label = "primes", "HARD"

    def params(self, rng):
        return {"mode": rng.choice(["count", "sum"]), "max_hi": rng.randint(20, 3000)}

    def titles(self, p):
        return ["Primes in a Range", "Counting Primes" if p["mode"] == "count" else "Sum of Primes"]

    def wordings(self, p):
        what = "how many prime numbers" if p["mode"] == "count" else "the sum of all prime numbers"
        return [f"Given two integers L and R, print {what} x satisfy L <= x <= R." if p["mode"] == "count"
                else f"Given two integers L and R, print {what} x with L <= x <= R.",
                f"Bob wrote every integer from L to R on a board. Print {what} on the board."]

    def input_spec(self, p):
        return "A single line with L and R."

    def output_spec(self, p):
        return "Print the answer."

    def constraints(self, p):
        return [f"1 <= L <= R <= {p['max_hi']}"]

    def case(self, p, rng):
        return tuple(sorted((rng.randint(1, p["max_hi"]), rng.randint(1, p["max_hi"]))))

    def render(self, p, case):
        return f"{case[0]} {case[1]}\n"

    def expected(self, p, case):
        primes = [x for x in range(case[0], case[1] + 1) if _is_prime(x)]
        return str(len(primes) if p["mode"] == "count" else sum(primes))

    def code(self, p):
        agg = "sum((1 for x in range(l, r + 1) if sieve[x]))" if p["mode"] == "count" else \
            "sum((x for x in range(l, r + 1) if sieve[x]))"
        return ("l, r = map(int, input().split())\nsieve = [False, False] + [True] * (r - 1)\n"
                "for i in range(2, int(r ** 0.5) + 1):\n    if sieve[i]:\n        for j in range(i * i, r + 1, i):\n"
                f"            sieve[j] = False\nprint({agg})\n")

    def hints(self, p):
        return ["A sieve of Eratosthenes up to R marks the primes; 0 and 1 are not prime.",
                "Then " + ("count" if p["mode"] == "count" else "add up") + " the marked numbers in [L, R]."]


@cache
def _is_prime(x: int) -> bool:
    return x >= 2 and all(x % d for d in range(2, int(x ** 0.5) + 1))


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


class Knapsack(Family):
    name, taco_label, functional, func_name = "knapsack", "VERY_HARD", True, "maxValue"
    arg_names = ("weights", "values", "capacity")
    signature, returns = "weights: List[int], values: List[int], capacity: int", "int"

    def params(self, rng):
        return {"unbounded": rng.random() < 0.5, "max_n": rng.randint(2, 8), "max_cap": rng.randint(3, 15)}

    def titles(self, p):
        return ["Knapsack", "Pack the Bag"]

    def wordings(self, p):
        use = "Each item can be taken any number of times." if p["unbounded"] else "Each item can be taken at most once."
        return [f"There are n items; item i has weight weights[i] and value values[i]. Return the maximum total "
                f"value of items whose total weight is at most capacity. {use}",
                f"Choose items to put in a bag of size capacity so that the sum of their weights does not exceed it "
                f"and the sum of their values is as large as possible. {use} Return that value."]

    def constraints(self, p):
        return [f"1 <= n <= {p['max_n']}", f"1 <= weights[i] <= {p['max_cap']}", "0 <= values[i] <= 20",
                f"0 <= capacity <= {p['max_cap']}"]

    def case(self, p, rng):
        n = rng.randint(1, p["max_n"])
        return [[rng.randint(1, p["max_cap"]) for _ in range(n)], [rng.randint(0, 20) for _ in range(n)],
                rng.randint(0, p["max_cap"])]

    def expected(self, p, args):
        weights, values, capacity = args
        if p["unbounded"]:
            @cache
            def best(cap: int) -> int:
                return max([values[i] + best(cap - w) for i, w in enumerate(weights) if w <= cap], default=0)

            return best(capacity)
        return max(sum(values[i] for i in chosen) for r in range(len(weights) + 1)
                   for chosen in itertools.combinations(range(len(weights)), r)
                   if sum(weights[i] for i in chosen) <= capacity)

    def code(self, p):
        loop = "range(w, capacity + 1)" if p["unbounded"] else "range(capacity, w - 1, -1)"
        return ("class Solution:\n    def maxValue(self, weights: List[int], values: List[int], capacity: int) -> int:\n"
                "        dp = [0] * (capacity + 1)\n        for w, v in zip(weights, values):\n"
                f"            for c in {loop}:\n                dp[c] = max(dp[c], dp[c - w] + v)\n"
                "        return dp[capacity]\n")

    def hints(self, p):
        return ["dp[c] is the best value with total weight at most c.",
                "Items are reusable, so iterate c upwards." if p["unbounded"]
                else "Each item is used once, so iterate c downwards to avoid reusing it."]


class Stairs(Family):
    name = "stairs"
    _MODS = (10**9 + 7, 998244353, 10007, 1000003, 9973)

    def taco(self, p):
        return "VERY_HARD" if len(p["steps"]) == 3 else "HARD"

    def params(self, rng):
        return {"steps": sorted(rng.sample(range(1, 6), rng.randint(2, 3))), "mod": rng.choice(self._MODS),
                "max_n": rng.randint(5, 80)}

    def titles(self, p):
        return ["Climbing Stairs", "Jumping Frog"]

    def wordings(self, p):
        steps = ", ".join(map(str, p["steps"]))
        return [f"You stand at step 0 of a staircase with N steps. In one move you climb {steps} steps. Print the "
                f"number of ways to reach exactly step N, modulo {p['mod']}.",
                f"A frog starts at position 0 and jumps forward by one of the lengths {steps} each time. How many "
                f"different jump sequences land exactly on N? Print the count modulo {p['mod']}."]

    def input_spec(self, p):
        return "A single integer N."

    def output_spec(self, p):
        return "Print the number of ways."

    def constraints(self, p):
        return [f"1 <= N <= {p['max_n']}"]

    def case(self, p, rng):
        return rng.randint(1, p["max_n"])

    def render(self, p, n):
        return f"{n}\n"

    def expected(self, p, n):
        @cache
        def ways(k: int) -> int:
            return 1 if k == 0 else sum(ways(k - s) for s in p["steps"] if s <= k)

        return str(ways(n) % p["mod"])

    def code(self, p):
        steps = "(" + ", ".join(map(str, p["steps"])) + ")"
        return ("n = int(input())\ndp = [0] * (n + 1)\ndp[0] = 1\nfor i in range(1, n + 1):\n"
                f"    for s in {steps}:\n        if s <= i:\n            dp[i] = (dp[i] + dp[i - s]) % {p['mod']}\n"
                "print(dp[n])\n")

    def hints(self, p):
        return [f"dp[i] = sum of dp[i - s] for s in {tuple(p['steps'])}, with dp[0] = 1.",
                f"Reduce modulo {p['mod']} at every step."]


FAMILIES: tuple[Family, ...] = (
    SumMultiples(), ReverseWords(), CountLetters(), FizzVariant(), Palindromes(), MinMax(), PowerSum(),
    MaxSubarray(), GcdPairs(), SortByKey(), RangeSums(), PairCount(), DigitSumBase(), RunLength(), KthDistinct(),
    GridSums(), LongestIncreasing(), CoinWays(), PrimeRange(), Brackets(), Knapsack(), Stairs(),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}


# --------------------------------------------------------------------------------------------------------------------
# Instances: parameters, side assignment, tests, records.
# --------------------------------------------------------------------------------------------------------------------


def _params_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def side_of(seed: int, family: str, params: dict) -> str:
    """Which side a parameter tuple belongs to: a seeded hash, so train and eval never share parameters."""
    digest = hashlib.sha256(f"{seed}|{family}|{_params_key(params)}".encode()).digest()
    return "eval" if int.from_bytes(digest[:8], "big") % EVAL_SHARE == 0 else "train"


def _family_order(seed: int) -> list[Family]:
    order = list(FAMILIES)
    random.Random(f"valley-demo-order|{seed}").shuffle(order)
    return order


def _render_case(family: Family, p: dict, case) -> dict:
    if family.functional:
        return {"input": "\n".join(json.dumps(arg) for arg in case), "output": json.dumps(family.expected(p, case)),
                "testtype": "functional"}
    return {"input": family.render(p, case), "output": family.expected(p, case) + "\n", "testtype": "stdin"}


def _functional_example(family: Family, test: dict) -> str:
    args = test["input"].split("\n")
    shown = ", ".join(f"{name} = {arg}" for name, arg in zip(family.arg_names, args, strict=False))
    return f"Example: Input: {shown} Output: {test['output']}"


def _statement(family: Family, p: dict, body: str, public: list[dict]) -> str:
    """A compact LiveCodeBench-like statement: the body (which names every parameter the code needs), the input and
    output format, the constraints on one line (they name the remaining parameters, so no two parameter tuples share
    a statement) and the samples. Compact because the tiny student pays for every prompt token in training and
    generation (issue I: the LCB layout with headings and two samples cost 90-220 tokens a statement)."""
    constraints = "Constraints: " + "; ".join(family.constraints(p))
    if family.functional:
        examples = "\n".join(_functional_example(family, t) for t in public)
        return f"{body}\n\n{examples}\n{constraints}"
    samples = "\n".join(f"Sample Input:\n{t['input'].rstrip()}\nSample Output:\n{t['output'].rstrip()}" for t in public)
    return f"{body}\n\nInput: {family.input_spec(p)}\nOutput: {family.output_spec(p)}\n{constraints}\n\n{samples}"


def _starter_code(family: Family) -> str:
    if not family.functional:
        return ""
    return f"class Solution:\n    def {family.func_name}(self, {family.signature}) -> {family.returns}:\n        "


@lru_cache(maxsize=256)
def _family_instances(seed: int, side: str, family_name: str, count: int) -> tuple[tuple[str, dict, dict], ...]:
    """The first `count` instances of one family on one side: (question_id, params, record). Instance k depends only
    on (seed, side, family, k) and the parameters of instances 0..k-1 (never reused), so prefixes are stable."""
    family = FAMILY_BY_NAME[family_name]
    used: set[str] = set()
    out = []
    for k in range(count):
        rng = random.Random(f"valley-demo|{seed}|{side}|{family_name}|{k}")
        for _attempt in range(2000):
            params = family.params(rng)
            key = _params_key(params)
            if key not in used and side_of(seed, family_name, params) == side:
                break
        else:
            raise ValueError(f"family {family_name!r} ran out of distinct {side} parameters at instance {k}: "
                             f"ask for fewer problems")
        used.add(key)
        tests = []
        seen_inputs: set[str] = set()
        for _attempt in range(200):  # distinct test inputs where the input space allows it
            test = _render_case(family, params, family.case(params, rng))
            if test["input"] not in seen_inputs:
                seen_inputs.add(test["input"])
                tests.append(test)
            if len(tests) == N_PUBLIC_TESTS + N_PRIVATE_TESTS:
                break
        while len(tests) < N_PUBLIC_TESTS + N_PRIVATE_TESTS:
            tests.append(_render_case(family, params, family.case(params, rng)))
        # The shortest tests are shown as samples (fewer tokens in the statement); the rest stay private.
        shown = sorted(range(len(tests)), key=lambda i: (len(tests[i]["input"]) + len(tests[i]["output"]), i))
        shown = set(shown[:N_PUBLIC_TESTS])
        public = [t for i, t in enumerate(tests) if i in shown]
        private = [t for i, t in enumerate(tests) if i not in shown]
        body = rng.choice(family.wordings(params))
        first_day, span = _TRAIN_DATES if side == "train" else _EVAL_DATES
        question_id = f"demo{seed}-{side[0]}-{family_name}-{k:03d}"
        record = {
            "question_id": question_id,
            "question_title": rng.choice(family.titles(params)),
            "question_content": _statement(family, params, body, public),
            "platform": PLATFORM,
            "contest_date": (first_day + timedelta(days=rng.randrange(span))).isoformat() + "T00:00:00",
            "starter_code": _starter_code(family),
            "difficulty": TACO_TO_LCB_DIFFICULTY[family.taco(params)],
            "public_test_cases": json.dumps(public),
            "private_test_cases": json.dumps(private),
            "metadata": json.dumps({"func_name": family.func_name} if family.functional else {}),
        }
        out.append((question_id, params, record))
    return tuple(out)


def _side_problems(seed: int, side: str, n: int) -> list[dict]:
    order = _family_order(seed)
    per_family = [n // len(order) + (1 if i < n % len(order) else 0) for i in range(len(order))]
    instances = {f.name: _family_instances(seed, side, f.name, c) for f, c in zip(order, per_family, strict=False)}
    # Round-robin over families, so any prefix of the list is balanced across families.
    return [dict(instances[order[i % len(order)].name][i // len(order)][2]) for i in range(n)]


def make_demo_problems(seed: int, n_train: int, n_eval: int) -> tuple[list[dict], list[dict]]:
    """(training problems, evaluation problems) as LiveCodeBench `code_generation_lite` records.

    Deterministic for a seed; the first n problems are the same whatever n is. Eval problems are held out: other
    question ids, parameters never used in training, later contest dates.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    for name, n in (("n_train", n_train), ("n_eval", n_eval)):
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"{name} must be a non-negative int, got {n!r}")
    return _side_problems(seed, "train", n_train), _side_problems(seed, "eval", n_eval)


def parse_question_id(question_id: str) -> tuple[int, str, str, int]:
    """`demo<seed>-<t|e>-<family>-<k>` -> (seed, side, family name, k)."""
    match = _QUESTION_ID_RE.match(question_id or "")
    if not match or match.group(3) not in FAMILY_BY_NAME:
        raise ValueError(f"question_id {question_id!r} is not a demo problem id (demo<seed>-<t|e>-<family>-<k>)")
    seed, side_letter, family, k = match.groups()
    return int(seed), {"t": "train", "e": "eval"}[side_letter], family, int(k)


def demo_instance(problem: dict) -> tuple[Family, dict]:
    """The family and parameters behind a demo problem record, regenerated from its question_id and checked
    against the record's text (a record edited after generation is refused, not silently mis-solved)."""
    qid = problem.get("question_id")
    seed, side, family_name, k = parse_question_id(qid)
    _, params, record = _family_instances(seed, side, family_name, k + 1)[k]
    if record["question_content"] != problem.get("question_content"):
        raise ValueError(f"problem {qid!r}: question_content differs from the generated demo problem")
    return FAMILY_BY_NAME[family_name], params


def reference_solution(problem: dict) -> str:
    """The correct solution source for a demo problem (what the demo teacher writes when it is right)."""
    family, params = demo_instance(problem)
    return normalise_code(family.code(params))


def reference_solutions(problems: list[dict]) -> list[str]:
    """`reference_solution` of many problems at once: one generation pass per (seed, side, family), not per problem."""
    wanted: dict[tuple[int, str, str], int] = {}
    for problem in problems:
        seed, side, family_name, k = parse_question_id(problem.get("question_id"))
        wanted[(seed, side, family_name)] = max(wanted.get((seed, side, family_name), 0), k + 1)
    instances = {key: _family_instances(*key, count) for key, count in wanted.items()}
    out = []
    for problem in problems:
        seed, side, family_name, k = parse_question_id(problem["question_id"])
        _, params, record = instances[(seed, side, family_name)][k]
        if record["question_content"] != problem.get("question_content"):
            raise ValueError(f"problem {problem['question_id']!r}: question_content differs from the generated demo "
                             "problem")
        out.append(normalise_code(FAMILY_BY_NAME[family_name].code(params)))
    return out


def taco_difficulty(problem: dict) -> str:
    """The TACO-style label (EASY … VERY_HARD) of a demo problem; LCB `difficulty` is its coarse version."""
    family, params = demo_instance(problem)
    return family.taco(params)
