using System.Collections.Immutable;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Toolkit.Analyzers;

/// <summary>
/// TK0001: a number (or bool) that becomes a TorchSharp <c>Scalar</c> or <c>Tensor</c> nobody holds: an implicit
/// conversion where an operation takes one, or a tensor operator with a number operand.
/// </summary>
/// <remarks>
/// The conversion creates a finalisable wrapper over a native handle that nothing references once the native call has
/// read the handle, so a garbage collection during the call may free the native value while libtorch reads it: a crash
/// ("INTERNAL ASSERT FAILED at c10/core/Scalar.h") or, worse, a wrong number used silently. A DisposeScope does not
/// keep Scalars alive. Reproduced with TorchSharp 0.107: index_add with an implicit alpha under a collecting thread
/// failed about once in 5,000 calls, and <c>t * 2.0</c> too (0.107's operators taking a number convert it inside
/// without holding it). The fix: hold the value for the call, <c>using var s = x.ToScalar();</c>, or in a field when it
/// is reused. TorchSharp also makes such temporaries inside some methods (the alpha of <c>Tensor + Tensor</c>,
/// <c>square()</c>, <c>arange(stop)</c>, its optimizers): no call site can hold those, which is why <c>TorchRuntime</c>
/// also defers the finaliser's frees of Scalars and tensors (<c>FinalizerGuard</c>).
/// </remarks>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class ScalarTemporaryAnalyzer : DiagnosticAnalyzer
{
    public const string Id = "TK0001";

    private static readonly DiagnosticDescriptor Rule = new(
        Id,
        "Implicit TorchSharp Scalar temporary",
        "'{0}' becomes a temporary {1} that the GC may free while the native call reads it; hold it for the call " +
            "(using var s = value.ToScalar();) or in a field",
        "Reliability",
        DiagnosticSeverity.Error,
        isEnabledByDefault: true,
        description: "An implicitly converted TorchSharp Scalar or Tensor is unreachable during the native call that " +
            "uses it; its finalizer can free it mid-call.");

    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics => [Rule];

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var scalar = start.Compilation.GetTypeByMetadataName("TorchSharp.Scalar");
            var tensor = start.Compilation.GetTypeByMetadataName("TorchSharp.torch+Tensor");
            if (scalar is null) return;   // the project does not use TorchSharp
            start.RegisterOperationAction(c => Check(c, scalar, tensor), OperationKind.Conversion);
            if (tensor is not null) start.RegisterOperationAction(c => CheckOperator(c, tensor), OperationKind.Binary);
        });
    }

    // TorchSharp 0.107's operators taking a C# number convert it to a Scalar inside and do not hold it either.
    private static void CheckOperator(OperationAnalysisContext context, INamedTypeSymbol tensor)
    {
        var binary = (IBinaryOperation)context.Operation;
        if (binary.OperatorMethod is not { } method || !SymbolEqualityComparer.Default.Equals(method.ContainingType,
            tensor)) return;
        foreach (var operand in new[] { binary.LeftOperand, binary.RightOperand })
            if (operand.Type is { SpecialType: not SpecialType.None })
                context.ReportDiagnostic(Diagnostic.Create(Rule, operand.Syntax.GetLocation(),
                    operand.Syntax.ToString(), "Scalar"));
    }

    private static void Check(OperationAnalysisContext context, INamedTypeSymbol scalar, INamedTypeSymbol? tensor)
    {
        var conversion = (IConversionOperation)context.Operation;
        if (!conversion.IsImplicit || !conversion.Conversion.IsUserDefined) return;
        var target = conversion.Type;
        var isScalar = SymbolEqualityComparer.Default.Equals(target, scalar);
        var isTensor = tensor is not null && SymbolEqualityComparer.Default.Equals(target, tensor);
        if (!isScalar && !isTensor) return;
        var source = conversion.Operand.Type;
        if (source is null || source.SpecialType == SpecialType.None) return;   // only numbers and bools
        context.ReportDiagnostic(Diagnostic.Create(Rule, conversion.Syntax.GetLocation(), conversion.Syntax.ToString(),
            isScalar ? "Scalar" : "Tensor"));
    }
}
