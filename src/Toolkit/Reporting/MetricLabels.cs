namespace Toolkit.Reporting;

/// <summary>A metric in words: the panel title, the unit of its axis, whether its values span decades.</summary>
/// <param name="Title">What the metric is, in words.</param>
/// <param name="Unit">The y axis: unit or kind of value.</param>
/// <param name="LogY">Its values span decades: drawn on a logarithmic axis.</param>
internal sealed record MetricLabel(string Title, string Unit, bool LogY = false);

/// <summary>The words every chart uses for the metrics the toolkit's jobs record (a metric not listed keeps its
/// name).</summary>
internal static class MetricLabels
{
    private static readonly Dictionary<string, MetricLabel> Known = new(StringComparer.Ordinal)
    {
        ["loss"] = new("training loss", "loss"),
        ["step_seconds"] = new("step time", "seconds"),
        ["comm.intra_bytes"] = new("bytes sent inside the group per step", "bytes"),
        ["comm.inter_bytes"] = new("bytes sent across groups per step", "bytes"),
        ["memory.params_bytes"] = new("parameter memory", "bytes"),
        ["memory.grads_bytes"] = new("gradient memory", "bytes"),
        ["memory.optimizer_bytes"] = new("optimizer-state memory", "bytes"),
        ["memory.peak_bytes"] = new("peak memory", "bytes"),
        ["rl.reward_mean"] = new("mean reward of the rollouts", "reward"),
        ["rl.heldout_accuracy"] = new("held-out accuracy (greedy)", "fraction correct"),
        ["rl.grad_norm"] = new("gradient norm (before clipping)", "L2 norm", LogY: true),
        ["rl.logprob_diff_mean"] = new("mean |log p train − log p engine|", "nats", LogY: true),
        ["rl.logprob_diff_max"] = new("max |log p train − log p engine|", "nats", LogY: true),
        ["rl.kl_infer_train"] = new("KL(engine ‖ trainer) per token", "nats", LogY: true),
        ["rl.masked_fraction"] = new("tokens masked or truncated by the correction", "fraction of tokens",
            LogY: true),
        ["rl.tokens_per_second"] = new("rollout throughput", "tokens/s"),
        ["rl.response_length"] = new("mean response length", "tokens"),
        ["rl.entropy"] = new("policy entropy", "nats per token"),
        ["rl.routing_flips"] = new("tokens routed to other experts, engine vs trainer", "fraction of tokens"),
        ["rl.clip_fraction"] = new("tokens where the PPO clip bound", "fraction of tokens"),
        ["rl.lr"] = new("learning rate", "learning rate", LogY: true),
        ["infer.records_done"] = new("records done", "records"),
        ["infer.shards_done"] = new("shards done", "shards"),
        ["infer.records_per_s"] = new("throughput", "records/s"),
        ["infer.quarantined"] = new("records quarantined", "records"),
        ["infer.workers"] = new("active workers", "workers"),
    };

    /// <summary>True when <paramref name="title"/> is the internal name of a metric the toolkit records (a title
    /// that should have been words).</summary>
    internal static bool IsInternalName(string title) => Known.ContainsKey(title) ||
        title.StartsWith("infer.", StringComparison.Ordinal) || title.StartsWith("rl.", StringComparison.Ordinal);

    /// <summary>The words for metric <paramref name="name"/>; a name not listed is its own title.</summary>
    public static MetricLabel Of(string name) => Known.TryGetValue(name, out var label) ? label : new(name, "");
}
