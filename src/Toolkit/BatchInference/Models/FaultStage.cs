using System.Text.Json;

namespace Toolkit.BatchInference;

/// <summary>
/// Faults on purpose, for the chaos run and the tests, named in <see cref="Variable"/> (comma-separated) in a worker's
/// environment. <c>records</c>: the first model of a pipeline is wrapped so that a record whose text holds a marker
/// misbehaves as real records do: <see cref="Crash"/> kills the worker process (SIGKILL, as the out-of-memory killer
/// does), <see cref="NotANumber"/> gives an output holding NaN, <see cref="Stall"/> never returns; without it the
/// markers are plain text. <c>start</c>: every worker process fails as it starts.
/// </summary>
internal sealed class FaultStage(IModelStage inner) : IModelStage
{
    /// <summary>The environment variable that turns the faults on.</summary>
    public const string Variable = "TOOLKIT_INFER_FAULTS";

    /// <summary>Marker of a record that kills its worker process.</summary>
    public const string Crash = "@@fault:crash@@";

    /// <summary>Marker of a record whose output holds NaN.</summary>
    public const string NotANumber = "@@fault:nan@@";

    /// <summary>Marker of a record the model never finishes.</summary>
    public const string Stall = "@@fault:stall@@";

    /// <summary>True when this process injects record faults.</summary>
    public static bool Enabled => Injects("records");

    /// <summary>True when <see cref="Variable"/> names <paramref name="fault"/>.</summary>
    public static bool Injects(string fault) => (Environment.GetEnvironmentVariable(Variable) ?? "")
        .Split(',', StringSplitOptions.TrimEntries).Contains(fault, StringComparer.Ordinal);

    /// <inheritdoc/>
    public string Name => inner.Name;

    /// <inheritdoc/>
    public object Prepare(string text) => new Marked(inner.Prepare(text),
        text.Contains(Crash, StringComparison.Ordinal), text.Contains(NotANumber, StringComparison.Ordinal),
        text.Contains(Stall, StringComparison.Ordinal));

    /// <inheritdoc/>
    public IPredictor CreateReplica() => new Replica(inner.CreateReplica());

    /// <inheritdoc/>
    public void Write(Utf8JsonWriter json, object output)
    {
        var (value, nan) = ((object, bool))output;
        inner.Write(json, value);
        if (nan) json.WriteNumber($"{Name}_fault", double.NaN);
    }

    /// <inheritdoc/>
    public void Dispose() => inner.Dispose();

    private sealed record Marked(object Prepared, bool Crash, bool NotANumber, bool Stall);

    private sealed class Replica(IPredictor inner) : IPredictor
    {
        public object[] Predict(IReadOnlyList<object> inputs)
        {
            var marked = inputs.Cast<Marked>().ToList();
            if (marked.Any(m => m.Crash)) Runtime.PosixSignals.Send(Environment.ProcessId, 9);
            if (marked.Any(m => m.Stall)) Thread.Sleep(Timeout.Infinite);
            var outputs = inner.Predict([.. marked.Select(m => m.Prepared)]);
            return [.. outputs.Select((o, i) => (object)(o, marked[i].NotANumber))];
        }

        public void Dispose() => inner.Dispose();
    }
}
