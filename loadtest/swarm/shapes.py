# loadtest/swarm/shapes.py
#
# The lab's scenarios (docs/design.md §5) as Locust load shapes, each a list of
# stages of --fib-stage-seconds (default 10 s):
#
#   ShortScenario   N short users                         (N: -u, default 1)
#   LongScenario    1, then 2, then 3 long users           (the talk's "time doubles")
#   ConvoyScenario  N short users; one long user joins; it leaves
#                   (the talk's 25,000 -> 90 req/s)
#
# Pick one in the web UI's shape picker (`--class-picker`) or headless with
# `--fib-scenario short|long|convoy`. The comparison engine runs the same
# shapes with fixed options. Locust asks a shape for its users once a
# second, so stages begin on whole seconds of the run.

from __future__ import annotations

from typing import ClassVar

from locust import LoadTestShape, User

from loadtest.swarm.users import FibOptions, FibUser, LongUser, ShortUser

SPAWN_RATE = 100.0  # users/s: a stage's users all start at once
# (seconds, users in all, the classes of the users this stage adds).
# Locust removes the users it added last first: a stage with fewer users
# removes what the stage before added.
Stage = tuple[float, int, list[type[User]]]


class ScenarioShape(LoadTestShape):
    """Stages of users per class; the run stops after the last stage."""

    abstract = True
    # Reads -u (short users); also keeps Locust from warning that -u is
    # ignored when a plain run (no scenario) is started from this locustfile.
    use_common_options = True
    scenario: ClassVar[str]
    user_classes: ClassVar[tuple[type[FibUser], ...]] = (ShortUser, LongUser)

    def __init__(self, options: FibOptions | None = None, short_users: int | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        # Given: the engine's fixed settings; None: read Locust's options at each tick.
        self.fixed_options = options
        self.fixed_short_users = short_users

    def options(self) -> tuple[FibOptions, int]:
        if self.fixed_options is not None:
            return self.fixed_options, self.fixed_short_users or 1
        assert self.runner is not None
        environment = self.runner.environment
        parsed = environment.parsed_options
        short_users = getattr(parsed, "num_users", None) or 1
        return FibOptions.of(environment), int(short_users)

    def stages(self, options: FibOptions, short_users: int) -> list[Stage]:
        raise NotImplementedError

    def duration(self) -> float:
        return sum(stage[0] for stage in self.stages(*self.options()))

    def tick(self) -> tuple[int, float, list[type[User]] | None] | None:
        run_time: float = self.get_run_time()  # type: ignore[no-untyped-call]
        end = 0.0
        for seconds, users, classes in self.stages(*self.options()):
            end += seconds
            if run_time < end:
                self._make_spawnable()
                return users, SPAWN_RATE, list(classes)
        return None

    def _make_spawnable(self) -> None:
        # With the class picker, the runner knows only the classes picked;
        # a scenario brings the ones it needs.
        assert self.runner is not None
        environment = self.runner.environment
        missing = [cls for cls in self.user_classes if cls not in environment.user_classes]
        if missing:
            environment.user_classes = [*environment.user_classes, *missing]


class ShortScenario(ScenarioShape):
    """Short requests only: N short users for one stage."""

    scenario = "short"

    def stages(self, options: FibOptions, short_users: int) -> list[Stage]:
        return [(options.stage_seconds, short_users, [ShortUser])]


class LongScenario(ScenarioShape):
    """1, then 2, then 3 long users: with the GIL, each request takes 1x, 2x, 3x."""

    scenario = "long"

    def stages(self, options: FibOptions, short_users: int) -> list[Stage]:
        return [(options.stage_seconds, clients, [LongUser]) for clients in (1, 2, 3)]


class ConvoyScenario(ScenarioShape):
    """Steady short users; one long user joins for a stage, then leaves."""

    scenario = "convoy"

    def stages(self, options: FibOptions, short_users: int) -> list[Stage]:
        stage = options.stage_seconds
        return [
            (stage, short_users, [ShortUser]),
            (stage, short_users + 1, [LongUser]),  # the one user added is a long one
            (stage, short_users, [ShortUser]),  # the long user, added last, leaves
        ]


SCENARIOS: dict[str, type[ScenarioShape]] = {
    shape.scenario: shape for shape in (ShortScenario, LongScenario, ConvoyScenario)
}
