using Microsoft.DotNet.Interactive;
using static Toolkit.Interactive.Tests.KernelResults;

namespace Toolkit.Interactive.Tests;

/// <summary>Results display as tables with named columns in the kernel, not as the kernel's collapsed object
/// views.</summary>
public sealed class ResultFormattersTests : IDisposable
{
    private readonly CompositeKernel _kernel = KernelFactory.Create();

    public void Dispose() => _kernel.Dispose();

    [Theory]
    [InlineData("new[] { new Toolkit.BatchInference.FailedShard(7, 0, 10, 2, \"boom\") }", "<th>Shard</th>",
        "<td>boom</td>")]
    [InlineData("new Toolkit.BatchInference.FailedShard(7, 0, 10, 2, \"boom\")", ">Shard</td>", ">boom</td>")]
    [InlineData("using Toolkit.Reporting;\nnew[] { new { Numerics = \"Int8\", Kl = 1.25e-4 } }.ToTable(\"dial\")",
        "<th>Numerics</th>", "<td>1.25e-4</td>")]
    public async Task RowsAndRecords_AreTables(string code, string heading, string cell)
    {
        // a notebook references the library through its package; here, the test's copy of it
        AssertSucceeded(await _kernel.SubmitCodeAsync(
            $"#r \"{typeof(Toolkit.Reporting.TextTable).Assembly.Location}\""));
        var result = await _kernel.SubmitCodeAsync(code);
        AssertSucceeded(result);
        var html = Assert.Single(Html(result));
        Assert.Contains(heading, html);
        Assert.Contains(cell, html);
        Assert.DoesNotContain("dni-treeview", html);
    }

    [Fact]
    public void RowTypes_AreRecords_NotServices()
    {
        var rows = ResultFormatters.RowTypes(typeof(Toolkit.Reporting.TextTable).Assembly.GetExportedTypes())
            .ToList();
        Assert.Contains(typeof(Toolkit.BatchInference.FailedShard), rows);
        Assert.DoesNotContain(typeof(Toolkit.Models.HfModel), rows);
        Assert.DoesNotContain(typeof(Toolkit.Reporting.TextTable), rows);
    }
}
