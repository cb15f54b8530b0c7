using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Toolkit.Comm;
using Toolkit.Paro;
using Toolkit.Runtime;

namespace Toolkit.Cli;

/// <summary>
/// <c>toolkit bench collectives</c>: all-reduce timings of native, ring, hierarchical and HO-Ring on
/// MPI processes, on an emulated cluster (<c>--emulate GxM</c>, root) or on this host, next to the
/// simulator's prediction.
/// </summary>
internal static class CollectiveBenchCommand
{
    public static Command Create()
    {
        var json = new Option<FileInfo>("--json") { Description = "Where to write the results.", Required = true };
        var emulate = new Option<string?>("--emulate") { Description = "GxM: G emulated nodes of M ranks (needs root). Without it: M ranks per group on this host, G groups." };
        var shape = new Option<string>("--shape") { Description = "GxM when not emulating.", DefaultValueFactory = _ => "2x2" };
        var bandwidth = new Option<string>("--inter-bandwidth") { Description = "Emulated link rate, e.g. 1gbit.", DefaultValueFactory = _ => "1gbit" };
        var latency = new Option<string>("--inter-latency") { Description = "Emulated link latency, e.g. 0.2ms (needs netem in the kernel).", DefaultValueFactory = _ => "0.2ms" };
        var sizes = new Option<string>("--sizes") { Description = "Message sizes.", DefaultValueFactory = _ => "1MiB,4MiB,16MiB,64MiB,256MiB" };
        var algorithms = new Option<string>("--algorithms") { Description = "native,ring,hierarchical,ho-ring.", DefaultValueFactory = _ => string.Join(',', CollectiveAlgorithms.Names) };
        var repeats = new Option<int>("--repeats") { Description = "Timed calls per size.", DefaultValueFactory = _ => 3 };
        var command = new Command("collectives", "Time all-reduce algorithms on MPI ranks (optionally on an emulated multi-node cluster) and compare with the simulator.")
            { json, emulate, shape, bandwidth, latency, sizes, algorithms, repeats };
        command.SetAction(parse =>
        {
            var emulated = parse.GetValue(emulate);
            var cluster = EmulatedCluster.Parse(emulated ?? parse.GetValue(shape)!, parse.GetValue(bandwidth)!, parse.GetValue(latency)!);
            var (g, m) = (cluster.Nodes, cluster.RanksPerNode);
            var sizeList = Units.ParseList(parse.GetValue(sizes)!, Units.ParseBytes);
            var algorithmList = Units.ParseList(parse.GetValue(algorithms)!, CollectiveAlgorithms.Parse);
            var rate = Units.ParseBitRate(parse.GetValue(bandwidth)!);
            var delay = Units.ParseDuration(parse.GetValue(latency)!);
            var output = Directory.CreateTempSubdirectory("toolkit-bench-collectives-");
            try
            {
                var rankArgs = new List<string> { "dotnet", ToolkitCli.Find(), "bench", "collectives-rank", "--out", output.FullName, "--group-size", $"{m}",
                    "--sizes", parse.GetValue(sizes)!, "--algorithms", parse.GetValue(algorithms)!, "--repeats", $"{parse.GetValue(repeats)}" };
                var (code, log) = emulated is null
                    ? Run(MpiLauncher.Find() ?? throw new InvalidOperationException("mpiexec was not found: install MPICH (apt-get install mpich)."), ["-n", $"{g * m}", .. rankArgs])
                    : Run("bash", [.. cluster.Command(), .. rankArgs]);
                if (code != 0) throw new InvalidOperationException($"The benchmark ranks failed (exit {code}):\n{log}");
                var measured = JsonSerializer.Deserialize<MeasuredCollectives>(File.ReadAllText(Path.Combine(output.FullName, CollectiveBenchmark.RankResultFile)))!;
                var latencyEmulated = emulated is not null && !log.Contains("NOT emulated", StringComparison.Ordinal);
                var topology = new Topology(g, m, measured.IntraBandwidth, emulated is null ? measured.IntraBandwidth : rate, measured.IntraLatency,
                    latencyEmulated ? delay : measured.IntraLatency, NicsPerNode: 1);
                var report = Report(topology, measured, emulated is not null, parse.GetValue(bandwidth)!, parse.GetValue(latency)!, latencyEmulated, log);
                File.WriteAllText(parse.GetValue(json)!.FullName, JsonSerializer.Serialize(report, ParoTrainJob.Json));
                foreach (var r in report.Results)
                    Console.WriteLine($"{r.Algorithm,-13}{Units.FormatBytes(r.Bytes),10}{r.Seconds * 1e3,10:F1} ms{r.BusBandwidth / 1e9,8:F3} GB/s   predicted {r.PredictedSeconds * 1e3,9:F1} ms ({r.PredictionError:+0%;-0%})");
                foreach (var s in report.Speedups)
                    Console.WriteLine($"{Units.FormatBytes(s.Bytes),10}: HO-Ring {s.HoRingOverRing:F2}x ring, {s.HoRingOverNative:F2}x native");
                return 0;
            }
            finally
            {
                output.Delete(recursive: true);
            }
        });
        return command;
    }

    public static Command CreateRank()
    {
        var output = new Option<DirectoryInfo>("--out") { Required = true };
        var groupSize = new Option<int>("--group-size") { Required = true };
        var sizes = new Option<string>("--sizes") { Required = true };
        var algorithms = new Option<string>("--algorithms") { Required = true };
        var repeats = new Option<int>("--repeats") { DefaultValueFactory = _ => 3 };
        var command = new Command("collectives-rank", "One MPI rank of bench collectives.") { Hidden = true, Options = { output, groupSize, sizes, algorithms, repeats } };
        command.SetAction(parse =>
        {
            using var comm = MpiCluster.InitializeWorld(parse.GetValue(groupSize));
            CollectiveBenchmark.Run(comm, Units.ParseList(parse.GetValue(sizes)!, Units.ParseBytes), Units.ParseList(parse.GetValue(algorithms)!, CollectiveAlgorithms.Parse),
                parse.GetValue(repeats), parse.GetValue(output)!.FullName);
            return 0;
        });
        return command;
    }

    private static CollectiveBenchReport Report(Topology topology, MeasuredCollectives measured, bool emulated, string rate, string latency, bool latencyEmulated, string log)
    {
        var rows = measured.Results.Select(r =>
        {
            var predicted = CollectiveSimulator.AllReduceSeconds(CollectiveAlgorithms.Parse(r.Algorithm), topology, r.Bytes);
            return new BenchRow(r.Algorithm, r.Bytes, r.Seconds, r.BusBandwidth, r.IntraBytesPerCall, r.InterBytesPerCall, predicted, (predicted - r.Seconds) / r.Seconds);
        }).ToList();
        var speedups = rows.GroupBy(r => r.Bytes).Select(g =>
        {
            double T(string a) => g.FirstOrDefault(r => r.Algorithm == a)?.Seconds ?? double.NaN;
            return new Speedup(g.Key, T("ring") / T("ho-ring"), T("native") / T("ho-ring"), T("hierarchical") / T("ho-ring"));
        }).ToList();
        var eth0 = log.Split('\n').Where(l => l.Contains(" eth0 ", StringComparison.Ordinal)).ToList();
        return new CollectiveBenchReport(
            new BenchTopology(topology.Nodes, topology.RanksPerNode, emulated, emulated ? rate : "host", emulated ? latency : "host", latencyEmulated,
                measured.IntraBandwidth, measured.IntraLatency, eth0),
            rows, speedups);
    }

    private static (int Code, string Output) Run(string file, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout + stderr.Result);
    }
}

/// <summary>The JSON of <c>toolkit bench collectives</c>.</summary>
internal sealed record CollectiveBenchReport(BenchTopology Topology, IReadOnlyList<BenchRow> Results, IReadOnlyList<Speedup> Speedups);

internal sealed record BenchTopology(int Nodes, int RanksPerNode, bool Emulated, string InterBandwidth, string InterLatency, bool LatencyEmulated,
    double MeasuredIntraBandwidth, double MeasuredIntraLatency, IReadOnlyList<string> LinkCounters);

internal sealed record BenchRow(string Algorithm, long Bytes, double Seconds, double BusBandwidth, long IntraBytesPerCall, long InterBytesPerCall,
    double PredictedSeconds, double PredictionError);

internal sealed record Speedup(long Bytes, double HoRingOverRing, double HoRingOverNative, double HoRingOverHierarchical);
