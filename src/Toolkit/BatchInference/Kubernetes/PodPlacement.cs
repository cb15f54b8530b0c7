using k8s.Models;

namespace Toolkit.BatchInference;

/// <summary>Where a job's pods may run: a node selector and the taints they tolerate, from their options.</summary>
internal sealed record PodPlacement(IDictionary<string, string>? NodeSelector, IList<V1Toleration>? Tolerations)
{
    private static readonly string[] Effects = ["NoSchedule", "PreferNoSchedule", "NoExecute"];

    /// <summary>Parses <c>key=value,...</c> and <c>key[=value]:Effect,...</c>.</summary>
    /// <exception cref="ArgumentException">A malformed entry; the message names the option and the entry.</exception>
    public static PodPlacement Parse(string? nodeSelector, string? tolerations)
    {
        Dictionary<string, string>? selector = null;
        foreach (var entry in Entries(nodeSelector))
        {
            var parts = entry.Split('=', 2);
            if (parts.Length != 2 || parts[0].Length == 0) throw new ArgumentException(
                $"entry '{entry}' is not key=value", nameof(nodeSelector));
            (selector ??= [])[parts[0]] = parts[1];
        }
        List<V1Toleration>? tolerated = null;
        foreach (var entry in Entries(tolerations))
        {
            var colon = entry.LastIndexOf(':');
            var effect = colon < 0 ? "" : entry[(colon + 1)..];
            if (colon <= 0 || !Effects.Contains(effect)) throw new ArgumentException(
                $"entry '{entry}' is not key[=value]:Effect (Effect: {string.Join(", ", Effects)})",
                nameof(tolerations));
            var keyValue = entry[..colon].Split('=', 2);
            (tolerated ??= []).Add(new V1Toleration
            {
                Key = keyValue[0], Effect = effect,
                OperatorProperty = keyValue.Length == 2 ? "Equal" : "Exists",
                Value = keyValue.Length == 2 ? keyValue[1] : null,
            });
        }
        return new PodPlacement(selector, tolerated);
    }

    /// <summary>Sets the placement on <paramref name="pod"/> and returns it.</summary>
    public V1PodSpec Apply(V1PodSpec pod)
    {
        pod.NodeSelector = NodeSelector;
        pod.Tolerations = Tolerations;
        return pod;
    }

    private static IEnumerable<string> Entries(string? list) =>
        (list ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
