"""The private parts of Trainer the recipes rely on (common/train/internals.py): each is still where we use it, and
one that moves stops a run in one line naming the transformers version."""

import pytest
import transformers

from common.errors import UserError
from common.train import internals


@pytest.mark.parametrize("name", sorted(internals.PRIVATE))
def test_each_private_part_is_still_as_the_recipes_use_it(name):
    what, present = internals.PRIVATE[name]
    assert present(), f"transformers {transformers.__version__} changed {name}: {what}"


def test_a_moved_private_part_stops_in_one_line_naming_the_version(monkeypatch):
    monkeypatch.delattr(transformers.Trainer, "_get_eval_sampler")
    assert internals.moved() == ["Trainer._get_eval_sampler"]
    with pytest.raises(UserError) as stopped:
        internals.check()
    message = str(stopped.value)
    assert f"transformers {transformers.__version__} has changed Trainer._get_eval_sampler" in message
    assert "common/train/internals.py" in message and "\n" not in message


def test_recipe_trainer_overrides_no_private_method_outside_that_file():
    """A private override added to RecipeTrainer (not through internals.PrivateHooks) would dodge the check."""
    from common.train import trainer

    private = {
        name
        for cls in (trainer.RecipeTrainer, *trainer.RecipeTrainer.__mro__)
        if cls.__module__.startswith("common.")
        for name in vars(cls)
        if name.startswith("_") and not name.startswith("__") and hasattr(transformers.Trainer, name)
    }
    assert private <= {"_get_train_sampler", "_get_eval_sampler"}
    assert {"_get_train_sampler", "_get_eval_sampler"} == {
        n.split(".")[1] for n in internals.PRIVATE if "Trainer." in n
    }
