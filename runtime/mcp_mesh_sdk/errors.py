"""Errors that the command line turns into a clear message and an exit code, never a traceback."""

from dataclasses import dataclass, field


@dataclass
class ConfigProblem:
    """One bad configuration variable and why it is bad."""

    variable: str
    reason: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.reason}"


@dataclass
class ConfigError(Exception):
    """The environment holds one or more bad variables; every one is listed."""

    problems: list[ConfigProblem] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"invalid configuration ({len(self.problems)} problem(s)):"]
        lines += [f"  {problem}" for problem in self.problems]
        return "\n".join(lines)


class OpsError(Exception):
    """An ops command could not do what was asked; the message says why."""

    exit_code = 2
