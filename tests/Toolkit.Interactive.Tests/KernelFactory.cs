using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.CSharp;

namespace Toolkit.Interactive.Tests;

/// <summary>A kernel like the tool's (C# with kernel helpers) with the Plotly formatter and our extension loaded.</summary>
internal static class KernelFactory
{
    public static CompositeKernel Create()
    {
        var csharp = new CSharpKernel().UseKernelHelpers().UseValueSharing();
        var kernel = new CompositeKernel { csharp };
        kernel.DefaultKernelName = csharp.Name;
        ((IKernelExtension)new Plotly.NET.Interactive.FormatterKernelExtension()).OnLoadAsync(kernel).GetAwaiter().GetResult();
        ToolkitKernelExtension.Load(kernel);
        return kernel;
    }
}
