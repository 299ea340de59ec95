"""Local copies of the Hugging Face dataset repos the production profile reads, in their real layouts.

`write_hub_repos(root)` writes, under `root`, one folder per hub repo with the repo's file layout and column names
(the layouts valley_assets/data/ocr2.py, taco.py and lcb.py read; checked against the hub's file listings):

- nvidia/OpenCodeReasoning-2: `train/python/train-0000K-of-00070.parquet` (the repo's 70-shard python split; only the
  first shards exist here), OCR2's columns, `question` = "-" on every row (recovered from the source datasets by
  (dataset, split, index)), `r1_generation` = `<think>…</think>` + a fenced python program;
- BAAI/TACO: `ALL/train-*.parquet` (+ the `TACO.py` script the hub repo ships, which must never run), TACO's columns
  with `input_output` tests and difficulty labels EASY … VERY_HARD, UNKNOWN_DIFFICULTY;
- codeparrot/apps: `train.jsonl`, `test.jsonl` at the root (+ `apps.py`);
- deepmind/code_contests: `data/{train,valid,test}-*.parquet` (`description`, tests as {input: [...], output: [...]});
- open-r1/codeforces: `data/{train,test}-*.parquet` (`description`, `input_format`, `output_format`, `examples`,
  `note`: the question is composed from them as the OCR2 card does);
- livecodebench/code_generation_lite: `test.jsonl`, `test2.jsonl` … `test7.jsonl` (one file per release increment,
  so release_v7 exists), private tests base64(zlib(pickle(json))) as LCB ships them, stdin and LeetCode-style
  functional problems.

Every problem is real and small: its tests' expected outputs are what its reference program prints (run here, in
process, when the files are written), every OCR2 trace's program is run on its problem's tests and its `judgement` /
`pass_rate` say what happened (about a third of the traces carry a deliberately wrong program). The benchmark's
statements share no wording with the training statements, so decontamination finds nothing. Deterministic for a
seed; writing takes well under a second.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import pickle
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OCR2_ID = "nvidia/OpenCodeReasoning-2"
TACO_ID = "BAAI/TACO"
APPS_ID = "codeparrot/apps"
CODE_CONTESTS_ID = "deepmind/code_contests"
CODEFORCES_ID = "open-r1/codeforces"
LCB_ID = "livecodebench/code_generation_lite"
LCB_VERSIONS = 7
TACO_LABELS = ("EASY", "MEDIUM", "MEDIUM_HARD", "HARD", "VERY_HARD", "UNKNOWN_DIFFICULTY")
OCR2_COLUMNS = ("id", "question_id", "question", "r1_generation", "qwq_critique", "solution", "judgement",
                "pass_rate", "source", "license", "dataset", "split", "difficulty", "index")
SCRIPT = "raise RuntimeError('a hub loading script must never run')\n"


def run_program(code: str, stdin: str) -> str:
    """What a stdin program prints (executed in this process: the fixture's own trusted programs only)."""
    out = io.StringIO()
    lines = iter(stdin.splitlines())

    def fake_input(prompt: str = "") -> str:
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    with contextlib.redirect_stdout(out):
        try:
            exec(compile(code, "<fixture>", "exec"), {"input": fake_input, "__name__": "__main__"})
        except Exception as exc:  # a wrong program may crash: that is a failed test, as in a grader
            return f"<{type(exc).__name__}>"
    return out.getvalue()


def outputs_match(got: str, expected: str) -> bool:
    """LCB's stdin comparison: line by line, trailing whitespace ignored."""
    return [line.rstrip() for line in got.strip().splitlines()] == \
        [line.rstrip() for line in expected.strip().splitlines()]


# --- training problems (the sources OCR2 points into) ---------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    slug: str
    title: str
    statement: str
    input_format: str
    output_format: str
    solution: str
    wrong: str
    inputs: tuple[str, ...]

    def question(self) -> str:
        """The statement as TACO and APPS print it (statement, then the input and output sections)."""
        return f"{self.statement}\n\n-----Input-----\n\n{self.input_format}\n\n-----Output-----\n\n{self.output_format}"

    def outputs(self) -> list[str]:
        return [run_program(self.solution, i) for i in self.inputs]


def _ints(rng: random.Random, n: int, lo: int, hi: int) -> str:
    return " ".join(str(rng.randint(lo, hi)) for _ in range(n))


def _list_inputs(rng: random.Random, k: int = 4, lo: int = -50, hi: int = 50) -> tuple[str, ...]:
    out = []
    for _ in range(k):
        n = rng.randint(2, 8)
        out.append(f"{n}\n{_ints(rng, n, lo, hi)}\n")
    return tuple(out)


def _task(template: int, c: int, rng: random.Random) -> Task:
    """Training task `template` with constant `c` (so that more problems than templates stay distinct)."""
    words = ["banana", "rhythm", "queue", "abracadabra", "level", "stats", "noon", "python"]
    if template == 0:
        return Task("add", "Shifted Sum", f"Chef has two integers a and b. Help Chef by printing a + b + {c}.",
                    "A single line with two integers a and b.", "Print one integer.",
                    f"a, b = map(int, input().split())\nprint(a + b + {c})\n",
                    f"a, b = map(int, input().split())\nprint(a - b + {c})\n",
                    tuple(f"{_ints(rng, 2, 1, 99)}\n" for _ in range(4)))
    if template == 1:
        return Task("max", "Tallest Tower", f"There are n towers with the given heights. Print the height of the "
                    f"tallest tower increased by {c}.",
                    "The first line holds n. The second line holds n integers, the heights.", "Print one integer.",
                    f"input()\nprint(max(map(int, input().split())) + {c})\n",
                    f"input()\nprint(min(map(int, input().split())) + {c})\n",
                    _list_inputs(rng))
    if template == 2:
        return Task("vowels", "Vowel Counter", f"Count the vowels (a, e, i, o, u) in a lowercase word and print that "
                    f"count multiplied by {c}.", "One lowercase word.", "Print one integer.",
                    f"s = input().strip()\nprint(sum(ch in 'aeiou' for ch in s) * {c})\n",
                    f"s = input().strip()\nprint(sum(ch not in 'aeiou' for ch in s) * {c})\n",
                    tuple(f"{rng.choice(words)}\n" for _ in range(4)))
    if template == 3:
        return Task("digits", "Digit Sum", f"Print the sum of the decimal digits of n, plus {c}.",
                    "One integer n (1 <= n <= 10^18).", "Print one integer.",
                    f"print(sum(int(d) for d in input().strip()) + {c})\n",
                    f"print(len(input().strip()) + {c})\n",
                    tuple(f"{rng.randint(10, 10**12)}\n" for _ in range(4)))
    if template == 4:
        m = 1000 + c
        return Task("fib", "Rabbit Pairs", f"F(1) = F(2) = 1 and F(k) = F(k-1) + F(k-2). Print F(n) modulo {m}.",
                    "One integer n (1 <= n <= 90).", "Print one integer.",
                    f"n = int(input())\na, b = 1, 1\nfor _ in range(n - 1):\n    a, b = b, (a + b) % {m}\nprint(a)\n",
                    f"n = int(input())\na, b = 1, 1\nfor _ in range(n):\n    a, b = b, (a + b) % {m}\nprint(a)\n",
                    tuple(f"{rng.randint(3, 90)}\n" for _ in range(4)))
    if template == 5:
        return Task("prime", "Prime Check", f"Print YES if n + {c} is a prime number, otherwise print NO.",
                    "One integer n (1 <= n <= 10^6).", "Print YES or NO.",
                    f"n = int(input()) + {c}\nok = n > 1 and all(n % d for d in range(2, int(n ** 0.5) + 1))\n"
                    "print('YES' if ok else 'NO')\n",
                    f"n = int(input()) + {c}\nprint('YES' if n % 2 else 'NO')\n",
                    tuple(f"{x}\n" for x in (rng.randint(2, 50) * 2 + 1 - c, 91 - c, 97 - c, 100 + c)))
    if template == 6:
        return Task("gcd", "Common Divisor", f"Print the greatest common divisor of a and b, multiplied by {c}.",
                    "Two integers a and b.", "Print one integer.",
                    f"import math\na, b = map(int, input().split())\nprint(math.gcd(a, b) * {c})\n",
                    f"a, b = map(int, input().split())\nprint(min(a, b) * {c})\n",
                    tuple(f"{x * g} {y * g}\n" for x, y, g in
                          ((rng.randint(2, 9), rng.randint(2, 9), rng.randint(1, 20)) for _ in range(4))))
    if template == 7:
        return Task("distinct", "Distinct Values", f"Print how many distinct values the sequence has, plus {c}.",
                    "The first line holds n. The second line holds n integers.", "Print one integer.",
                    f"input()\nprint(len(set(input().split())) + {c})\n",
                    f"print(int(input()) + {c})\n",
                    _list_inputs(rng, lo=1, hi=4))
    if template == 8:
        return Task("sort", "Sorted Scores", f"Print the scores in non-decreasing order, each multiplied by {c}.",
                    "The first line holds n. The second line holds n integers.", "Print n integers on one line.",
                    f"input()\nprint(*sorted(int(x) * {c} for x in input().split()))\n",
                    f"input()\nprint(*(int(x) * {c} for x in input().split()))\n",
                    _list_inputs(rng))
    if template == 9:
        return Task("palindrome", "Mirror Word", f"Print YES if the word read backwards equals itself and has at least "
                    f"{c} letters, otherwise NO.", "One lowercase word.", "Print YES or NO.",
                    f"s = input().strip()\nprint('YES' if s == s[::-1] and len(s) >= {c} else 'NO')\n",
                    "s = input().strip()\nprint('YES' if s[0] == s[-1] else 'NO')\n",
                    tuple(f"{w}\n" for w in ("level", "noon", "abca", "stats", "python")))
    if template == 10:
        return Task("pairs", "Pair Sums", f"Count the pairs i < j with a_i + a_j = {c + 4}.",
                    "The first line holds n. The second line holds n integers.", "Print one integer.",
                    f"input()\na = list(map(int, input().split()))\n"
                    f"print(sum(a[i] + a[j] == {c + 4} for i in range(len(a)) for j in range(i + 1, len(a))))\n",
                    f"input()\na = list(map(int, input().split()))\n"
                    f"print(sum(a[i] + a[j] == {c + 4} for i in range(len(a)) for j in range(len(a)) if i != j))\n",
                    _list_inputs(rng, lo=0, hi=c + 4))
    return Task("bits", "Binary Ones", f"Print the number of ones in the binary representation of n * {c}.",
                "One integer n (0 <= n <= 10^9).", "Print one integer.",
                f"print(bin(int(input()) * {c}).count('1'))\n",
                f"print(bin(int(input()) * {c}).count('0') - 1)\n",
                tuple(f"{rng.randint(1, 10**9)}\n" for _ in range(4)))


N_TEMPLATES = 12


def training_tasks(n: int, seed: int = 0) -> list[Task]:
    rng = random.Random(seed)
    return [_task(k % N_TEMPLATES, 1 + k // N_TEMPLATES, rng) for k in range(n)]


# --- the benchmark (LiveCodeBench code_generation_lite) -------------------------------------------------------------
@dataclass(frozen=True)
class BenchTask:
    question_id: str
    title: str
    content: str
    platform: str
    difficulty: str
    starter_code: str
    func_name: str | None
    solution: str
    inputs: tuple[str, ...]  # stdin text, or newline-separated JSON arguments for functional problems

    def outputs(self) -> list[str]:
        if self.func_name is None:
            return [run_program(self.solution, i) for i in self.inputs]
        scope: dict = {}
        exec(compile("from typing import List\n" + self.solution, "<fixture>", "exec"), scope)
        method = getattr(scope["Solution"](), self.func_name)
        return [json.dumps(method(*[json.loads(a) for a in i.split("\n")])) for i in self.inputs]


def _bench_task(j: int, rng: random.Random) -> BenchTask:
    c = 2 + j // 7
    template = j % 7
    stdin_format = "Input is given from Standard Input in the following format:"
    if template == 0:
        return BenchTask(f"abc{300 + j}_a", "Product Mod", f"You are given N integers A_1, ..., A_N. Find their "
                         f"product modulo {997 + c}.\n\n{stdin_format}\nN\nA_1 ... A_N\n\nOutput\n\nPrint the answer.",
                         "atcoder", "easy", "", None,
                         f"input()\nr = 1\nfor x in map(int, input().split()):\n    r = r * x % {997 + c}\nprint(r)\n",
                         tuple(f"{n}\n{_ints(rng, n, 1, 10**6)}\n" for n in (3, 5, 2, 6)))
    if template == 1:
        return BenchTask(f"abc{300 + j}_b", "Adjacent Twins", f"Takahashi has a string S. Report how many indices i "
                         f"satisfy S_i = S_(i+1), then add {c}.\n\n{stdin_format}\nS\n\nOutput\n\nPrint the count.",
                         "atcoder", "medium", "", None,
                         f"s = input().strip()\nprint(sum(s[i] == s[i + 1] for i in range(len(s) - 1)) + {c})\n",
                         tuple(f"{''.join(rng.choice('ab') for _ in range(rng.randint(2, 12)))}\n" for _ in range(4)))
    if template == 2:
        return BenchTask(f"{1900 + j}{'ABC'[j % 3]}", "Distance Scaled", f"Two points X and Y lie on a line. Output "
                         f"{c} times the distance between them.\n\nInput\n\nX Y on one line.\n\nOutput\n\nThe value.",
                         "codeforces", "easy", "", None,
                         f"x, y = map(int, input().split())\nprint(abs(x - y) * {c})\n",
                         tuple(f"{_ints(rng, 2, -1000, 1000)}\n" for _ in range(4)))
    if template == 3:
        return BenchTask(f"abc{300 + j}_c", "Staircase Climb", f"Aoki climbs N steps taking 1 or {c} steps at a "
                         f"time. Count the ways modulo 1000000007.\n\n{stdin_format}\nN\n\nOutput\n\nThe ways.",
                         "atcoder", "hard", "", None,
                         f"n = int(input())\nw = [1] + [0] * n\nfor i in range(1, n + 1):\n"
                         f"    w[i] = (w[i - 1] + (w[i - {c}] if i >= {c} else 0)) % 1000000007\nprint(w[n])\n",
                         tuple(f"{rng.randint(1, 60)}\n" for _ in range(4)))
    if template == 4:
        return BenchTask(f"{3000 + j}", "Count Even Entries", f"Given an integer array nums, return how many of its "
                         f"elements are divisible by {c}.", "leetcode", "easy",
                         "class Solution:\n    def countDivisible(self, nums: List[int]) -> int:\n        ",
                         "countDivisible",
                         f"class Solution:\n    def countDivisible(self, nums: List[int]) -> int:\n"
                         f"        return sum(x % {c} == 0 for x in nums)\n",
                         tuple(json.dumps([rng.randint(0, 30) for _ in range(rng.randint(1, 7))]) for _ in range(4)))
    if template == 5:
        return BenchTask(f"{3000 + j}", "Longest Run", f"Given a string s, return the length of its longest block of "
                         f"equal consecutive characters plus {c}.", "leetcode", "medium",
                         "class Solution:\n    def longestRun(self, s: str) -> int:\n        ", "longestRun",
                         "class Solution:\n    def longestRun(self, s: str) -> int:\n"
                         "        best = cur = 1\n        for a, b in zip(s, s[1:]):\n"
                         "            cur = cur + 1 if a == b else 1\n            best = max(best, cur)\n"
                         f"        return best + {c}\n",
                         tuple(json.dumps("".join(rng.choice("xyz") for _ in range(rng.randint(1, 10))))
                               for _ in range(4)))
    return BenchTask(f"{3000 + j}", "Window Maximum Sum", f"Given an integer array nums and an integer k, return "
                     f"the largest sum of k consecutive elements, times {c}.", "leetcode", "hard",
                     "class Solution:\n    def maxWindow(self, nums: List[int], k: int) -> int:\n        ",
                     "maxWindow",
                     "class Solution:\n    def maxWindow(self, nums: List[int], k: int) -> int:\n"
                     f"        return max(sum(nums[i:i + k]) for i in range(len(nums) - k + 1)) * {c}\n",
                     tuple(json.dumps([rng.randint(-9, 9) for _ in range(n)]) + "\n" + json.dumps(rng.randint(1, n))
                           for n in (rng.randint(2, 8) for _ in range(4))))


def lcb_encode_private(tests: list[dict]) -> str:
    """Private tests as LiveCodeBench stores them: base64(zlib(pickle(json string)))."""
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


def bench_tasks(versions: int = LCB_VERSIONS, per_version: int = 2, seed: int = 0) -> list[list[BenchTask]]:
    rng = random.Random(seed + 1)
    return [[_bench_task(v * per_version + k, rng) for k in range(per_version)] for v in range(versions)]


def lcb_record(task: BenchTask, version: int, k: int) -> dict:
    testtype = "stdin" if task.func_name is None else "functional"
    tests = [{"input": i, "output": o, "testtype": testtype} for i, o in zip(task.inputs, task.outputs(), strict=True)]
    month = 5 + version * 2 + k // 2  # release v1 from 2023-05, each later release two months on
    return {
        "question_title": task.title, "question_content": task.content, "platform": task.platform,
        "question_id": task.question_id, "contest_id": task.question_id.split("_")[0],
        "contest_date": f"{2023 + (month - 1) // 12}-{(month - 1) % 12 + 1:02d}-{10 + k:02d}T00:00:00",
        "starter_code": task.starter_code, "difficulty": task.difficulty,
        "public_test_cases": json.dumps(tests[:1]), "private_test_cases": lcb_encode_private(tests[1:]),
        "metadata": json.dumps({"func_name": task.func_name} if task.func_name else {}),
    }


# --- writers -------------------------------------------------------------------------------------------------------
def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _write_parquet(path: Path, rows: list[dict], schema: pa.Schema | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def _generation(task: Task, code: str, rng: random.Random, attempt: int) -> str:
    musing = rng.choice(["Let me read the statement carefully.", "First, what does the input look like?",
                         "This looks like a direct simulation.", "I should check the edge cases."])
    return (f"<think>\n{musing} The task ({task.title}, attempt {attempt}): {task.statement}\n"
            f"I will read the input, compute the value and print it.\n</think>\n\n"
            f"Here is the solution.\n\n```python\n{code}```\n")


def write_hub_repos(root: Path, *, n_problems: int = 24, traces_per_problem: int = 2, lcb_per_release: int = 2,
                    seed: int = 0) -> dict[str, str]:
    """Write the repos under `root`; return {config key: folder}. Keys are the profile's `data.hub` fields
    (ocr2, taco, apps, code_contests, codeforces) and `lcb` (benchmark.lcb); `hub_ids` maps the same keys to the
    hub ids the folders stand for (e.g. for a profile's comments)."""
    root = Path(root)
    rng = random.Random(seed)
    tasks = training_tasks(n_problems, seed)
    folders = {"ocr2": root / OCR2_ID, "taco": root / TACO_ID, "apps": root / APPS_ID,
               "code_contests": root / CODE_CONTESTS_ID, "codeforces": root / CODEFORCES_ID, "lcb": root / LCB_ID}

    # Each problem lives in one source dataset, at a row index of one split there (what OCR2's key points to).
    taco_rows, apps_rows = {"train": []}, {"train": [], "test": []}
    cc_rows, cf_rows = {"train": [], "valid": [], "test": []}, {"train": [], "test": []}
    placed = []  # (task, dataset name in OCR2, split, index, difficulty label, source platform)
    for k, task in enumerate(tasks):
        tests = list(zip(task.inputs, task.outputs(), strict=True))
        kind = ("taco", "taco", "apps", "code_contests", "open-r1/codeforces", "taco")[k % 6]
        nth = k // 6  # how many of this kind came before (each kind sits at fixed positions in the cycle)
        if kind == "taco":
            label = TACO_LABELS[len(taco_rows["train"]) % 5] if k % 11 else "UNKNOWN_DIFFICULTY"
            taco_rows["train"].append({
                "question": task.question(), "solutions": json.dumps([task.solution]), "starter_code": "",
                "input_output": json.dumps({"inputs": [i for i, _ in tests], "outputs": [o for _, o in tests]}),
                "difficulty": label, "raw_tags": "[]", "name": task.title, "source": "codechef",
                "tags": "['Implementation']", "skill_types": "['Basic']", "url": f"https://www.codechef.com/problems/V{k}",
                "Expected Auxiliary Space": None, "time_limit": "1 seconds", "date": "2021-06-01",
                "picture_num": "0", "memory_limit": "256 megabytes", "Expected Time Complexity": None})
            placed.append((task, "taco", "train", len(taco_rows["train"]) - 1, label, "codechef"))
        elif kind == "apps":
            split = ("train", "test")[nth % 2]
            apps_rows[split].append({
                "problem_id": len(apps_rows[split]), "question": task.question(),
                "solutions": json.dumps([task.solution]),
                "input_output": json.dumps({"inputs": [i for i, _ in tests], "outputs": [o for _, o in tests]}),
                "difficulty": "introductory", "url": f"https://codeforces.com/problemset/problem/{k}/A",
                "starter_code": ""})
            placed.append((task, "apps", split, len(apps_rows[split]) - 1, "UNKNOWN_DIFFICULTY", "codeforces"))
        elif kind == "code_contests":
            split = ("train", "valid")[nth % 2]
            cc_rows[split].append({
                "name": f"{k}_{task.slug}", "description": task.question(),
                "public_tests": {"input": [tests[0][0]], "output": [tests[0][1]]},
                "private_tests": {"input": [i for i, _ in tests[1:]], "output": [o for _, o in tests[1:]]},
                "generated_tests": {"input": [], "output": []}, "source": 2, "difficulty": 7,
                "solutions": {"language": [3], "solution": [task.solution]},
                "incorrect_solutions": {"language": [3], "solution": [task.wrong]},
                "cf_contest_id": 1000 + k, "cf_index": "A", "cf_points": 500.0, "cf_rating": 800,
                "cf_tags": ["implementation"], "is_description_translated": False, "untranslated_description": "",
                "time_limit": {"seconds": 1, "nanos": 0}, "memory_limit_bytes": 256 << 20,
                "input_file": "", "output_file": ""})
            placed.append((task, "code_contests", split, len(cc_rows[split]) - 1, "UNKNOWN_DIFFICULTY",
                           "codeforces"))
        else:
            cf_rows["train"].append({
                "id": f"{1500 + k}A", "aliases": None, "contest_id": str(1500 + k), "contest_name": f"Round {k}",
                "contest_type": "CF", "contest_start": 1600000000 + k, "contest_start_year": 2020, "index": "A",
                "time_limit": 1.0, "memory_limit": 256.0, "title": task.title, "description": task.statement,
                "input_format": task.input_format, "output_format": task.output_format,
                "examples": [{"input": tests[0][0], "output": tests[0][1]}],
                "note": "In the first example the answer follows from the statement." if k % 2 else None,
                "editorial": None, "rating": 800, "tags": ["implementation"], "testset_size": len(tests),
                "official_tests": [{"input": i, "output": o} for i, o in tests], "official_tests_complete": True,
                "input_mode": "stdio", "generated_checker": None, "executable": True})
            placed.append((task, "open-r1/codeforces", "train", len(cf_rows["train"]) - 1, "UNKNOWN_DIFFICULTY",
                           "codeforces"))

    # Sources, in their layouts (empty splits get no file: the loaders read only the splits OCR2 points into).
    taco_dir = folders["taco"]
    _write_parquet(taco_dir / "ALL" / "train-00000-of-00001.parquet", taco_rows["train"])
    (taco_dir / "TACO.py").write_text(SCRIPT)
    for split, rows in apps_rows.items():
        _write_jsonl(folders["apps"] / f"{split}.jsonl", rows)
    (folders["apps"] / "apps.py").write_text(SCRIPT)
    for split, rows in cc_rows.items():
        if rows:
            _write_parquet(folders["code_contests"] / "data" / f"{split}-00000-of-00001.parquet", rows)
    for split, rows in cf_rows.items():
        if rows:
            _write_parquet(folders["codeforces"] / "data" / f"{split}-00000-of-00001.parquet", rows)

    # OCR2 traces: every `traces_per_problem`-th trace of a problem with a wrong program (k-dependent), graded here.
    ocr2 = []
    for k, (task, dataset, split, index, label, platform) in enumerate(placed):
        expected = task.outputs()
        for attempt in range(traces_per_problem):
            wrong = (k + attempt) % 3 == 2
            code = task.wrong if wrong else task.solution
            passed = sum(outputs_match(run_program(code, i), o) for i, o in zip(task.inputs, expected, strict=True))
            pass_rate = passed / len(expected)
            ocr2.append({
                "id": f"{rng.getrandbits(64):016x}", "question_id": f"{k:08x}{'0' * 24}", "question": "-",
                "r1_generation": _generation(task, code, rng, attempt),
                "qwq_critique": "The program reads the input and prints the required value." if not wrong else
                "The program computes the wrong quantity.",
                "solution": f"```python\n{code}```", "judgement": "right" if pass_rate == 1.0 else "wrong",
                "pass_rate": pass_rate, "source": platform, "license": "cc-by-4.0", "dataset": dataset,
                "split": split, "difficulty": label if dataset == "taco" else "UNKNOWN_DIFFICULTY",
                "index": str(index)})
    schema = pa.schema([(c, pa.float64() if c == "pass_rate" else pa.string()) for c in OCR2_COLUMNS])
    n_shards = 3
    per_shard = -(-len(ocr2) // n_shards)
    for shard in range(n_shards):
        rows = ocr2[shard * per_shard:(shard + 1) * per_shard]
        _write_parquet(folders["ocr2"] / "train" / "python" / f"train-{shard:05d}-of-00070.parquet", rows, schema)

    # LiveCodeBench release files test.jsonl .. test7.jsonl.
    for v, version_tasks in enumerate(bench_tasks(LCB_VERSIONS, lcb_per_release, seed)):
        name = "test.jsonl" if v == 0 else f"test{v + 1}.jsonl"
        _write_jsonl(folders["lcb"] / name, [lcb_record(t, v, k) for k, t in enumerate(version_tasks)])
    return {key: str(folder) for key, folder in folders.items()}


HUB_IDS = {"ocr2": OCR2_ID, "taco": TACO_ID, "apps": APPS_ID, "code_contests": CODE_CONTESTS_ID,
           "codeforces": CODEFORCES_ID, "lcb": LCB_ID}
