"""What a demo problem family is: the base class every family in `families_*` subclasses, and a shared rendering helper.

Each family (sum of multiples, reverse words, FizzBuzz variants, max subarray, prefix sums, coin change, …) has
parameters that show up in its statement (a divisor, an output word, an index base, a modulus, the constraints), a
few wordings, a test-case generator, a *reference function* that computes expected outputs from structured inputs,
and the *solution source* the demo teacher writes. Expected outputs come from the reference functions; the test
suite runs the solution sources against them, so the two implementations check each other.
"""

from __future__ import annotations

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


def space_separated(values) -> str:
    return " ".join(str(v) for v in values)
