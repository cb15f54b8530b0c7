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
        context.DisplayAs(Html.Table(plan.ToTable()), "text/html");
        context.Display(ParoCharts.PlanMemory(plan), "text/html");
        context.Display(ParoCharts.PlanTraffic(plan), "text/html");
        context.Display(ParoCharts.PlanStepTime(plan), "text/html");
        return Task.CompletedTask;
    }
}
