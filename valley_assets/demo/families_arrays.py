"""Demo problem families about integer arrays: min/max, maximum subarray, range sums, pair counts, k-th distinct
maximum, grid row and column sums."""

from __future__ import annotations

import itertools

from valley_assets.demo.family import Family, space_separated


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
        return f"{len(a)}\n{space_separated(a)}\n"

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
        return f"{len(a)}\n{space_separated(a)}\n"

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
        return f"{len(a)} {len(queries)}\n{space_separated(a)}\n" + "".join(f"{lo} {hi}\n" for lo, hi in queries)

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
        return f"{len(g)} {len(g[0])}\n" + "".join(space_separated(row) + "\n" for row in g)

    def expected(self, p, g):
        rows, cols = [sum(r) for r in g], [sum(c) for c in zip(*g, strict=False)]
        return {"rows": space_separated(rows), "cols": space_separated(cols), "max_row": str(max(rows)),
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
