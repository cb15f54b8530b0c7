using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Paro;
using Toolkit.Reporting;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!paro plan ...</c>: the twin of <see cref="ParoPlanOptions.Plan"/> (and <c>toolkit paro plan</c>).</summary>
public sealed class ParoPlanCommand : KernelDirectiveCommand
{
    private static readonly ParoPlanOptions Defaults = new();

    /// <summary>A new directive instance.</summary>
    internal static KernelActionDirective CreateDirective() => new("plan", "Predict memory, traffic and step time of every PaRO strategy and recommend one.")
    {
        Parameters =
        {
            new KernelDirectiveParameter("--model", $"llama-7b, llama-13b or llama-65b (default {Defaults.Model}).").AddCompletions(() => ModelSpec.Presets.Keys),
            new KernelDirectiveParameter("--parameters", "Explicit parameter count (overrides --model).") { TypeHint = "number" },
            new KernelDirectiveParameter("--layers", $"Layers of an explicit model (default {Defaults.Layers}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--hidden", $"Hidden size of an explicit model (default {Defaults.Hidden}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--trainable-fraction", "Trainable share: 1 full, 0.0625 partial, 0.003 PEFT (default 1).") { TypeHint = "number" },
            new KernelDirectiveParameter("--gpus", $"GPUs (default {Defaults.Gpus}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--gpus-per-node", $"GPUs per node = group size (default {Defaults.GpusPerNode}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--accumulation", $"Micro-steps per step (default {Defaults.Accumulation}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--micro-batch", $"Sequences per micro-step per GPU (default {Defaults.MicroBatch}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--sequence-length", $"Tokens per sequence (default {Defaults.SequenceLength}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--device-memory", $"GiB per device (default {Defaults.DeviceMemory}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--network", $"Gb/s per node (default {Defaults.Network}).") { TypeHint = "number" },
            new KernelDirectiveParameter("--intra-bandwidth", "GB/s per GPU inside a node (default 150).") { TypeHint = "number" },
            new KernelDirectiveParameter("--inter-bandwidth", "GB/s per GPU across nodes (default from --network).") { TypeHint = "number" },
            new KernelDirectiveParameter("--tflops", "Sustained TFLOP/s per GPU (default 156).") { TypeHint = "number" },
            new KernelDirectiveParameter("--gathers", $"Parameter all-gathers per micro-step, 1 or 2 (default {Defaults.Gathers}).") { TypeHint = "number" },
        },
    };

    private static readonly string[] Options = [.. CreateDirective().Parameters.Select(p => p.Name)];

    /// <summary><c>--model</c>.</summary>
    public string Model { get; set; } = Defaults.Model;
    /// <summary><c>--parameters</c>.</summary>
    public double? Parameters { get; set; }
    /// <summary><c>--layers</c>.</summary>
    public int Layers { get; set; } = Defaults.Layers;
    /// <summary><c>--hidden</c>.</summary>
    public int Hidden { get; set; } = Defaults.Hidden;
    /// <summary><c>--trainable-fraction</c>.</summary>
    public double TrainableFraction { get; set; } = Defaults.TrainableFraction;
    /// <summary><c>--gpus</c>.</summary>
    public int Gpus { get; set; } = Defaults.Gpus;
    /// <summary><c>--gpus-per-node</c>.</summary>
    public int GpusPerNode { get; set; } = Defaults.GpusPerNode;
    /// <summary><c>--accumulation</c>.</summary>
    public int Accumulation { get; set; } = Defaults.Accumulation;
    /// <summary><c>--micro-batch</c>.</summary>
    public int MicroBatch { get; set; } = Defaults.MicroBatch;
    /// <summary><c>--sequence-length</c>.</summary>
    public int SequenceLength { get; set; } = Defaults.SequenceLength;
    /// <summary><c>--device-memory</c>.</summary>
    public double DeviceMemory { get; set; } = Defaults.DeviceMemory;
    /// <summary><c>--network</c>.</summary>
    public double Network { get; set; } = Defaults.Network;
    /// <summary><c>--intra-bandwidth</c>.</summary>
    public double? IntraBandwidth { get; set; }
    /// <summary><c>--inter-bandwidth</c>.</summary>
    public double? InterBandwidth { get; set; }
    /// <summary><c>--tflops</c>.</summary>
    public double? Tflops { get; set; }
    /// <summary><c>--gathers</c>.</summary>
    public int Gathers { get; set; } = Defaults.Gathers;

    internal ParoPlanOptions ToOptions() => new()
    {
        Model = Model, Parameters = Parameters, Layers = Layers, Hidden = Hidden, TrainableFraction = TrainableFraction, Gpus = Gpus,
        GpusPerNode = GpusPerNode, Accumulation = Accumulation, MicroBatch = MicroBatch, SequenceLength = SequenceLength,
        DeviceMemory = DeviceMemory, Network = Network, IntraBandwidth = IntraBandwidth, InterBandwidth = InterBandwidth, Tflops = Tflops, Gathers = Gathers,
    };

    internal static Task HandleAsync(ParoPlanCommand command, KernelInvocationContext context)
    {
        MagicOptions.ThrowIfUnknown(command, "#!paro plan", Options);
        var plan = command.ToOptions().Plan();
        context.DisplayAs(PlanTable(plan), "text/html");
        context.Display(ParoCharts.PlanMemory(plan), "text/html");
        context.Display(ParoCharts.PlanTraffic(plan), "text/html");
        context.Display(ParoCharts.PlanStepTime(plan), "text/html");
        return Task.CompletedTask;
    }

    private static string PlanTable(ParoPlan plan)
    {
        static string G(double b) => (b / (1024.0 * 1024 * 1024)).ToString("F1", System.Globalization.CultureInfo.InvariantCulture);
        var html = new System.Text.StringBuilder($"<p><b>{plan.Model.Name}</b> on {System.Net.WebUtility.HtmlEncode(plan.Cluster.Name)}, m = {plan.Cluster.GroupSize}, A = {plan.Training.Accumulation}</p>");
        html.Append("<table><tr><th>strategy</th><th>fits</th><th>params GiB</th><th>grads GiB</th><th>optimizer GiB</th><th>total GiB</th><th>intra GB/step</th><th>inter GB/step</th><th>step s</th><th>tokens/s</th></tr>");
        foreach (var e in plan.Strategies)
            html.Append($"<tr><td>{e.Strategy.Code}{(e.Strategy.KnownAs is { } k ? $" ({k})" : "")}</td><td>{(e.Feasible ? "yes" : "no")}</td><td>{G(e.Memory.Parameters)}</td><td>{G(e.Memory.Gradients)}</td><td>{G(e.Memory.Optimizer)}</td><td>{G(e.Memory.Total)}</td>" +
                $"<td>{e.IntraBytesPerStep / 1e9:F2}</td><td>{e.InterBytesPerStep / 1e9:F2}</td><td>{e.StepSeconds:F3}</td><td>{e.TokensPerSecond:F0}</td></tr>");
        html.Append($"</table><p>Recommended: <b>{plan.Recommended?.Code ?? "none"}</b></p><ul>");
        foreach (var r in plan.Reasons) html.Append("<li>").Append(System.Net.WebUtility.HtmlEncode(r)).Append("</li>");
        return html.Append("</ul>").ToString();
    }
}
