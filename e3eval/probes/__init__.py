"""Policy probes on stored rollouts (`e3eval probe`): per-token log-probs, entropy and KL by teacher forcing."""

from e3eval.probes.forward import ProbeModel, TokenStats, span_logprob, token_stats

__all__ = ["ProbeModel", "TokenStats", "span_logprob", "token_stats"]
