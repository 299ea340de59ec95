"""What `ProcessCluster` runs as the trainer pod of the production-profile test: the entrypoint's own pipes session
and parameter checks (recipe resolved, train file read and every row validated), then a report shaped like the
entrypoint's, with numbers derived from the inputs. It does not train: the production recipe needs CUDA and the hub
model; real training through pipes is tested in tests/training."""

import math
import os

from valley_assets.training.chat_template import validate_messages
from valley_assets.training.session import open_session
from valley_assets.training.sft import load_training_rows, metadata_for_dagster, parse_params


def main() -> None:
    with open_session(None) as session:
        params = parse_params(session.extras)
        recipe = params["recipe"]
        rows = load_training_rows(params["train_file"])
        for i, row in enumerate(rows):
            validate_messages(row["messages"], i)
        world = int(os.environ["WORLD_SIZE"])
        steps_per_epoch = math.ceil(len(rows) / recipe.global_batch_size)
        steps = steps_per_epoch * int(recipe.num_train_epochs)
        curve = [{"step": s, "loss": round(2.0 / s, 6)} for s in range(1, steps + 1)]
        for point in curve:
            session.log(f"step {point['step']}/{steps} loss {point['loss']}")
        summary = {
            "steps": steps, "epochs": float(recipe.num_train_epochs), "final_loss": curve[-1]["loss"],
            "train_loss_mean": sum(p["loss"] for p in curve) / steps, "loss_curve": curve,
            "examples": len(rows), "examples_dropped_too_long": 0, "resumed_from_step": 0, "world_size": world,
            "gradient_accumulation_steps": recipe.gradient_accumulation_steps(world), "precision": recipe.precision,
            "recipe": recipe.name, "base_model": params["base_model"],
        }
        session.report(metadata_for_dagster(summary, params["output_dir"]))


if __name__ == "__main__":
    main()
