"""Real data: OCR2 / TACO / LCB loaders, the distillation pool, subsets and data checks.

Modules: `schema` (declared schemas), `reading` (streamed batches), `ocr2` (traces + question recovery), `taco`,
`lcb` (releases, date windows, private tests, the shared-file adapter), `decontam`, `pool` (build_pool),
`subsets` (select_subset, select_ablation_arm), `checks` (pure data checks).
"""
