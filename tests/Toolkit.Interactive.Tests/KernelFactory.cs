using Microsoft.DotNet.Interactive;
using Microsoft.DotNet.Interactive.CSharp;

namespace Toolkit.Interactive.Tests;

/// <summary>A kernel like the tool's (C# with kernel helpers) with our extension (and its chart formatter)
/// loaded.</summary>
internal static class KernelFactory
{
    public static CompositeKernel Create()
    {
        var csharp = new CSharpKernel().UseKernelHelpers().UseValueSharing();
        var kernel = new CompositeKernel { csharp };
        kernel.DefaultKernelName = csharp.Name;
        ToolkitKernelExtension.Load(kernel);
        return kernel;
    }
}
