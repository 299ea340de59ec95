"""The embedded demo world: seeded problem families, a deterministic teacher, and a tiny Qwen2 student.

`problems.make_demo_problems`, `teacher.demo_teacher_traces`, `tiny_model.build_tiny_student` (pre-trained on
`tiny_model.demo_pretraining_texts`: generic text and direct solutions of easy training-side problems);
`runner.run_solutions` is the demo's small execution checker used to label and verify solutions.
"""
