"""Agent plans and the orchestrator: plans are data (versioned YAML templates of steps naming arms),
the orchestrator is a deterministic state machine that checks the run's budget before every step.

Plain values in, plain values out: this package knows neither the gateway nor HTTP; arms are an
interface (:class:`bastion.agents.arms.Arm`) that the composition root fills in."""
