"""Reading whose identity a reenacted face carries from fitted coefficients."""

from __future__ import annotations

import numpy as np

from facereenact.evaluate.fitted_identity import FittedIdentities, faithful_output_votes, identity_votes

SCALE = np.ones(40)


def _people(gap: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    source = rng.normal(size=40)
    driver = source + gap * rng.normal(size=40) / np.sqrt(40)
    return source, driver, rng.normal(size=(40, 10))


def _faces(identity: np.ndarray, expression: np.ndarray, drift: np.ndarray) -> FittedIdentities:
    """Faces of one person as the regressor would fit them: identity drifting with expression."""
    expression = np.atleast_2d(expression)
    return FittedIdentities(identity + expression @ drift.T, expression)


def test_a_shared_expression_misleads_the_as_fitted_reading_but_not_the_matched_one() -> None:
    source_identity, driver_identity, drift = _people(gap=0.5)
    rng = np.random.default_rng(1)
    source = _faces(source_identity, np.zeros(10), drift)
    expressions = 2.0 * rng.normal(size=(16, 10))  # strong driving expressions
    driving = _faces(driver_identity, expressions, drift)
    output = _faces(source_identity, expressions, drift)  # the source person, making them
    votes = identity_votes(output, source, driving, drift, SCALE)
    assert votes["expression_matched"].all()
    assert not votes["as_fitted"].any()  # close identities, big expressions: the driver "wins"
    # The faithful output predicted from the drift is exactly this output.
    reference = _faces(driver_identity, np.zeros(10), drift)
    np.testing.assert_array_equal(faithful_output_votes(source, driving, reference, drift, SCALE), votes["as_fitted"])


def test_an_output_that_is_the_driving_person_is_read_as_the_driver() -> None:
    source_identity, driver_identity, drift = _people(gap=3.0)
    expressions = np.random.default_rng(2).normal(size=(8, 10))
    driving = _faces(driver_identity, expressions, drift)
    votes = identity_votes(driving, _faces(source_identity, np.zeros(10), drift), driving, drift, SCALE)
    assert not votes["as_fitted"].any() and not votes["expression_matched"].any()


def test_without_drift_both_readings_agree_and_a_faithful_output_always_wins() -> None:
    source_identity, driver_identity, _ = _people(gap=1.0)
    none = np.zeros((40, 10))
    expressions = np.random.default_rng(3).normal(size=(8, 10))
    source, driving = _faces(source_identity, np.zeros(10), none), _faces(driver_identity, expressions, none)
    output = _faces(0.7 * source_identity + 0.3 * driver_identity, expressions, none)
    votes = identity_votes(output, source, driving, none, SCALE)
    np.testing.assert_array_equal(votes["as_fitted"], votes["expression_matched"])
    assert votes["as_fitted"].all()
    assert faithful_output_votes(source, driving, _faces(driver_identity, np.zeros(10), none), none, SCALE).all()
