namespace Toolkit.Comm;

/// <summary>
/// An emulated cluster of <paramref name="Nodes"/> nodes with <paramref name="RanksPerNode"/> ranks each, made by
/// <c>build/emulate-cluster.sh</c> (network namespaces on an isolated bridge, tc-shaped links; needs root). The script
/// is embedded in the library and written to a temporary file when used.
/// </summary>
/// <param name="Nodes">G.</param>
/// <param name="RanksPerNode">M.</param>
/// <param name="InterBandwidth">Link rate in tc's spelling (1gbit).</param>
/// <param name="InterLatency">Link latency (0.2ms); applied where the kernel has netem.</param>
public sealed record EmulatedCluster(int Nodes, int RanksPerNode, string InterBandwidth = "1gbit",
    string InterLatency = "0.2ms")
{
    /// <summary>Shaped links per node (multi-rail): local rank i crosses nodes on link i mod K. Default 1.</summary>
    public int NicsPerNode { get; init; } = 1;

    /// <summary>Parses <c>GxM</c>.</summary>
    /// <exception cref="ArgumentException">Not of that form.</exception>
    public static EmulatedCluster Parse(string shape, string interBandwidth = "1gbit", string interLatency = "0.2ms")
    {
        var parts = shape.ToLowerInvariant().Split('x');
        return parts.Length == 2 && int.TryParse(parts[0], out var g) && int.TryParse(parts[1],
            out var m) && g > 0 && m > 0
            ? new EmulatedCluster(g, m, interBandwidth, interLatency)
            : throw new ArgumentException($"'{shape}' is not a cluster shape: use GxM, e.g. 2x2 or 4x2.");
    }

    /// <summary>The script and its options; append the rank program's command line (it runs G·M ranks under mpiexec
    /// inside the emulated nodes).</summary>
    public IReadOnlyList<string> Command() =>
        [ScriptPath(), "--nodes", $"{Nodes}", "--ranks-per-node", $"{RanksPerNode}", "--nics-per-node",
            $"{NicsPerNode}", "--inter-bandwidth", InterBandwidth, "--inter-latency", InterLatency, "--verbose", "--"];

    /// <summary>Writes the embedded script to a temporary file (once per process) and returns its path.</summary>
    public static string ScriptPath()
    {
        var path = Path.Combine(Path.GetTempPath(), $"toolkit-emulate-cluster-{Environment.ProcessId}.sh");
        if (File.Exists(path)) return path;
        using var resource
            = typeof(EmulatedCluster).Assembly.GetManifestResourceStream("Toolkit.Comm.emulate-cluster.sh")
            ?? throw new InvalidOperationException("The emulated-cluster script is missing from the Toolkit assembly.");
        using var file = File.Create(path);
        resource.CopyTo(file);
        return path;
    }
}
