"""Demo problem families about numbers: divisibility, FizzBuzz words, powers, gcd/lcm, digit sums in a base, primes."""

from __future__ import annotations

from functools import cache

from valley_assets.demo.family import Family, space_separated


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
        return f"{len(a)}\n{space_separated(a)}\n"

    def expected(self, p, a):
        return str(sum(x for x in a if x % p["k"] == 0))

    def code(self, p):
        return ("n = int(input())\na = list(map(int, input().split()))\n"
                f"print(sum(x for x in a if x % {p['k']} == 0))\n")

    def hints(self, p):
        return [f"A number x is a multiple of {p['k']} exactly when x % {p['k']} == 0.",
                "Negative multiples count too, and Python's % gives 0 for them.",
                "A generator expression inside sum() handles it, and an empty sum is 0."]


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
