"""Demo problem families solved by dynamic programming: longest increasing subsequence, coin change, knapsack,
stairs."""

from __future__ import annotations

import itertools
from bisect import bisect_left, bisect_right
from functools import cache

from valley_assets.demo.family import Family, space_separated


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
        return f"{len(a)}\n{space_separated(a)}\n"

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
