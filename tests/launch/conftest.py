import sys
from pathlib import Path

# The cluster double and the simulated pod program live here; the launcher imports the double by name
# (`api_factory="k8s_double:installed_api"`).
sys.path.insert(0, str(Path(__file__).parent))
