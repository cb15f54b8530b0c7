using System.Runtime.InteropServices;
using Toolkit.Runtime;
using TorchSharp;

namespace Toolkit.Tests.Runtime;

public sealed class NativeRuntimeTests
{
    [Fact]
    public unsafe void ShimWriter_ProducesLoadableLibrary_WhoseFunctionsReturn()
    {
        var dir = Directory.CreateTempSubdirectory("toolkit-shim-");
        try
        {
            var path = Path.Combine(dir.FullName, "libshimtest.so");
            var machine = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? (ushort)183 : (ushort)62;
            File.WriteAllBytes(path, ElfShimWriter.Build(machine, "libshimtest.so", ["toolkit_test_a",
                "toolkit_test_b"]));
            var handle = NativeLibrary.Load(path);
            foreach (var name in new[] { "toolkit_test_a", "toolkit_test_b" })
            {
                var function = (delegate* unmanaged<void>)NativeLibrary.GetExport(handle, name);
                function();   // a no-op that returns
            }
            Assert.False(NativeLibrary.TryGetExport(handle, "toolkit_test_c", out _));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void ElfImage_ReadsTorchSharpVersionNeeds_AndSystemDefinitions()
    {
        var original = TorchNativeLoader.CandidateDirectories(AppContext.BaseDirectory)
            .Select(d => Path.Combine(d, "libLibTorchSharp.so")).First(File.Exists);
        var needs = ElfImage.Read(original).ReadVersionNeeds();
        var libstdcxx = needs.Where(n => n.File == "libstdc++.so.6").ToList();
        Assert.Contains(libstdcxx, n => n.Version == "GLIBCXX_3.4.32");
        var index = libstdcxx.Single(n => n.Version == "GLIBCXX_3.4.32").Index;
        Assert.Equal(["_ZSt21ios_base_library_initv"], ElfImage.Read(original).ReadUndefinedSymbols(index));
    }

    [Fact]
    public void TorchRuntime_Initializes_AndPatchesOnlyWhenTheSystemLacksTheVersion()
    {
        var info = TorchRuntime.EnsureInitialized();
        var systemHasIt = File.ReadLines("/proc/self/maps").Select(l => l.IndexOf('/') is var i and >= 0 ? l[i..] : "")
            .Where(p => Path.GetFileName(p).StartsWith("libstdc++.so", StringComparison.Ordinal))
            .Select(p => ElfImage.Read(p).ReadVersionDefinitions().Contains("GLIBCXX_3.4.32")).First();
        Assert.Equal(!systemHasIt, info.Patched);
        using var six = 6.ToScalar();
        using var x = torch.arange(six, dtype: torch.float32).reshape(2, 3);
        Assert.Equal(15f, x.sum().item<float>());
    }

    [Fact]
    public void TorchSharp_TrainsALinearModel_LossDecreases()
    {
        TorchRuntime.EnsureInitialized();
        torch.manual_seed(1);
        using var model = torch.nn.Linear(8, 1);
        var optimizer = torch.optim.AdamW(model.parameters(), lr: 0.05);
        using var x = torch.randn(64, 8);
        using var y = x.sum(1, keepdim: true);
        float first = 0, last = 0;
        for (var step = 0; step < 50; step++)
        {
            using var scope = torch.NewDisposeScope();
            optimizer.zero_grad();
            var loss = torch.nn.functional.mse_loss(model.call(x), y);
            loss.backward();
            optimizer.step();
            if (step == 0) first = loss.item<float>();
            last = loss.item<float>();
        }
        Assert.True(last < first / 4, $"loss {first} -> {last}");
    }

    [Fact]
    public void Devices_RejectMalformedSpecs_WithTheGrammar()
    {
        var e = Assert.Throws<ArgumentException>(() => Devices.Resolve("gpu0"));
        Assert.Contains(Devices.Grammar, e.Message);
        Assert.Equal("cpu", Devices.Resolve("cpu").Name);
        Assert.Contains("auto:", Devices.Resolve("auto").Reason);
    }

    [Fact]
    public void MpiLibrary_Probe_FindsMpich()
    {
        Assert.Equal("libmpich.so.12", MpiLibrary.Probe());
    }
}
