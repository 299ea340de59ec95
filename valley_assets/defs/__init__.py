"""The asset graph, one module per stage: data → teacher → training → evaluation → analysis, plus automation."""
