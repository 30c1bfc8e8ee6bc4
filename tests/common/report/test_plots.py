"""The training curves (common.report.plots): readable with one evaluation as with many."""

from common.report import plots


def test_one_evaluation_is_a_labelled_point_at_the_end_of_steps_from_zero():
    history = [{"loss": 0.7 - 0.01 * s, "step": s} for s in range(6, 66, 6)] + [
        {"eval_loss": 0.41, "eval_accuracy": 0.8596, "step": 66}
    ]
    plt, figure = plots.curves_figure(history, "accuracy")
    loss, curve = figure.axes
    assert loss.get_xlim()[0] == curve.get_xlim()[0] == 0  # not ticks 60-66 around a lone dot
    assert curve.get_xlim()[1] >= 66
    assert [t.get_text() for t in curve.texts] == ["0.8596"] and [t.get_text() for t in loss.texts] == ["0.41"]
    plt.close(figure)
    many = history + [{"eval_loss": 0.4, "eval_accuracy": 0.86, "step": 132}]
    plt, figure = plots.curves_figure(many, "accuracy")
    assert not figure.axes[1].texts  # a curve speaks for itself
    plt.close(figure)
    assert plots.training_curves(history, "accuracy").startswith(b"\x89PNG")
