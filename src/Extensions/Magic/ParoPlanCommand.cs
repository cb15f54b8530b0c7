using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.Commands;
using Microsoft.DotNet.Interactive.Directives;
using Toolkit.Paro;
using Toolkit.Reporting;

namespace Toolkit.Interactive.Magic;

/// <summary><c>#!paro plan ...</c>: the twin of <see cref="ParoPlanOptions.Plan"/> (and <c>toolkit paro
/// plan</c>).</summary>
public sealed class ParoPlanCommand : OptionsMagicCommand<ParoPlanOptions>
{
    /// <summary>A new directive instance (a directive can belong to one kernel only).</summary>
    internal static KernelActionDirective CreateDirective() =>
        CreateDirective("plan", "Predict memory, traffic and step time of every PaRO strategy and recommend one.",
            new ParoPlanOptions());

    /// <inheritdoc/>
    public override IEnumerable<string> GetValidationErrors(CompositeKernel kernel) => ValidationErrors(new(),
        "paro plan");

    internal static Task HandleAsync(ParoPlanCommand command, KernelInvocationContext context)
    {
        var plan = command.Bind(new(), "paro plan").Plan();
        context.DisplayAs(PlanTable(plan), "text/html");
        context.Display(ParoCharts.PlanMemory(plan), "text/html");
        context.Display(ParoCharts.PlanTraffic(plan), "text/html");
        context.Display(ParoCharts.PlanStepTime(plan), "text/html");
        return Task.CompletedTask;
    }

    private static string PlanTable(ParoPlan plan)
    {
        static string G(double b) => (b / (1024.0 * 1024 * 1024)).ToString("F1",
            System.Globalization.CultureInfo.InvariantCulture);
        var html = new System.Text.StringBuilder(
            $"<p><b>{plan.Model.Name}</b> on {System.Net.WebUtility.HtmlEncode(plan.Cluster.Name)}, m " +
                $"= {plan.Cluster.GroupSize}, A = {plan.Training.Accumulation}</p>");
        html.Append(
            "<table><tr><th>strategy</th><th>fits</th><th>params GiB</th><th>grads GiB</th><th>optimizer " +
                "GiB</th><th>total GiB</th><th>intra GB/step</th><th>inter GB/step</th><th>step " +
                    "s</th><th>tokens/s</th></tr>");
        foreach (var e in plan.Strategies)
            html.Append(
                $"<tr><td>{e.Strategy.Code}{(e.Strategy.KnownAs is { } k ? $" " +
                    $"({k})" : "")}</td><td>{(e.Feasible
                        ? "yes" : "no")}</td><td>{G(e.Memory.Parameters)}</td><td>{G(e.Memory.Gradients)}</td><td>{G(
                            e.Memory.Optimizer)}</td><td>{G(e.Memory.Total)}</td>" +
                $"<td>{e.IntraBytesPerStep / 1e9:F2}</td><td>{e.InterBytesPerStep / 1e9:F2}</td><td>{e.StepSeconds:F3}</td><td>{e.TokensPerSecond:F0}</td></tr>");
        html.Append($"</table><p>Recommended: <b>{plan.Recommended?.Code ?? "none"}</b></p><ul>");
        foreach (var r in plan.Reasons) html.Append("<li>").Append(System.Net.WebUtility.HtmlEncode(r)).Append("</li>");
        return html.Append("</ul>").ToString();
    }
}
