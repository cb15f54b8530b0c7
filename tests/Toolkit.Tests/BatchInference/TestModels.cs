using System.Text.Json;
using Toolkit.BatchInference;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// A fast, deterministic model stage for pipeline tests: the output is the text's length. It fails, as real models do,
/// on demand: a batch holding a text with "POISON" throws (the record alone throws too), and creating more replicas
/// than <see cref="HealthyReplicas"/> throws (0: a worker that cannot load its model; 1: a model that breaks when its
/// replica is restarted).
/// </summary>
internal sealed class LengthModel : IModelStage
{
    private int _replicas;

    public string Name => "length";
    public int HealthyReplicas { get; init; } = int.MaxValue;
    public int ReplicasCreated => _replicas;

    public object Prepare(string text) => text;

    public IPredictor CreateReplica()
    {
        return Interlocked.Increment(ref _replicas) > HealthyReplicas
            ? throw new InvalidOperationException("model file is corrupt") : new Replica();
    }

    public void Write(Utf8JsonWriter json, object output) => json.WriteNumber("length", (int)output);

    public void Dispose() { }

    private sealed class Replica : IPredictor
    {
        public object[] Predict(IReadOnlyList<object> inputs) =>
            inputs.Any(i => ((string)i).Contains("POISON", StringComparison.Ordinal))
                ? throw new InvalidOperationException("tensor shape mismatch on a poisoned record")
                : [.. inputs.Select(i => (object)((string)i).Length)];

        public void Dispose() { }
    }
}

/// <summary>Writes JSONL inputs for tests.</summary>
internal static class Inputs
{
    public static string Jsonl(string folder, int records, Func<int, string?>? special = null,
        string name = "input.jsonl")
    {
        var path = Path.Combine(folder, name);
        File.WriteAllLines(path, Enumerable.Range(0, records).Select(i =>
            special?.Invoke(i) ?? JsonSerializer.Serialize(new { id = $"r{i:D5}",
                text = $"record number {i} says hello" + new string('!', i % 7) })));
        return path;
    }
}

/// <summary>Launch settings for batch-inference tests.</summary>
internal static class Launches
{
    /// <summary>Workers as tasks of the test process, the job folder under <paramref name="runs"/>.</summary>
    public static Toolkit.Jobs.LaunchOptions InProcess(string runs) =>
        InferJobOptions.DefaultLaunch with { Launcher = Toolkit.Jobs.Launcher.InProcess, RunsDirectory = runs };
}
