using Toolkit.Comm;
using Toolkit.Jobs;
using Toolkit.Models;
using Toolkit.Paro;
using Toolkit.Runtime;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Paro;

/// <summary>
/// Every trained strategy on a tiny Hugging Face Llama (grouped-query attention) and a tiny Mixtral (3 experts, top-2,
/// so some experts get no gradient in a micro-batch), n = 4 ranks in groups of 2, A = 2: each rank builds placeholders
/// and reads only the slices its strategy keeps from the folder, and must end with the parameters of plain TorchSharp
/// training of the whole folder (torch.optim.AdamW, one process) to 1e-5 relative, whole-model and layer-wise,
/// in-process and on MPI processes.
/// </summary>
public sealed class HfExactnessTests : IClassFixture<HfExactnessTests.Folders>
{
    private const int Ranks = 4, GroupSize = 2, Accumulation = 2, Steps = 3;
    private const double Tolerance = 1e-5;
    private readonly Folders _folders;

    public HfExactnessTests(Folders folders) => _folders = folders;

    /// <summary>The two folders, written once for the class.</summary>
    public sealed class Folders : IDisposable
    {
        private readonly TemporaryFolder _root = new("paro-hf-exact-");

        public Folders()
        {
            TorchRuntime.EnsureInitialized();
            ModelInitOptions Tiny(string arch) => new()
            {
                Arch = arch, Out = Path.Combine(_root.Path, arch), Layers = 2, Hidden = 16, Heads = 2, KvHeads = 1,
                    Intermediate = 24,
                Experts = 3, TopK = 2, Vocabulary = 270, Context = 16, InitStd = 0.3,
            };
            Llama = ModelInit.Run(Tiny("llama"));
            Mixtral = ModelInit.Run(Tiny("mixtral"));
        }

        public string Llama { get; }
        public string Mixtral { get; }

        public string Of(string arch) => arch == "llama" ? Llama : Mixtral;

        public IModelConfig Config(string folder) => HfConfig.Read(folder).Config;

        public void Dispose() => _root.Dispose();
    }

    public static TheoryData<string, string, bool> Cases()
    {
        var cases = new TheoryData<string, string, bool>();
        foreach (var arch in new[] { "llama", "mixtral" })
            foreach (var s in ShardingStrategy.Trained)
                foreach (var layerwise in new[] { false, true })
                    cases.Add(arch, s.Code, layerwise);
        return cases;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void InProcess_MatchesSingleProcessTrainingOfTheFolder(string arch, string code, bool layerwise)
    {
        var folder = _folders.Of(arch);
        var reference = ExactnessProbe.Reference(Ranks, Accumulation, Steps, folder: folder);
        Assert.True(ExactnessProbe.RelativeError(reference, ExactnessProbe.Reference(Ranks, Accumulation, 0,
            folder: folder)) > 1e-3,
            "three steps barely moved the parameters: the comparison would not show a wrong update");
        var results = InProcessCluster.Run(Ranks, GroupSize, comm => ExactnessProbe.Train(comm, code, GroupSize,
            Accumulation, Steps, layerwise: layerwise, folder: folder));
        AssertMatches($"{arch}/{code}{(layerwise ? "/layerwise" : "")}", reference, results);
    }

    [Fact]
    public async Task Mpi_EveryStrategy_MatchesSingleProcessTrainingOfBothFolders()
    {
        using var runs = new TemporaryFolder("toolkit-paro-hf-mpi-");
        var outcomes = await JobHost.RunAsync(new ParoSelfTestJob(), new ParoSelfTestOptions
        {
            Launch = new() { Launcher = Launcher.Mpi, Ranks = Ranks, GroupSize = GroupSize, RunsDirectory = runs.Path },
            Accumulation = Accumulation,
            Steps = Steps,
            Folders = $"{_folders.Llama},{_folders.Mixtral}",
        });
        foreach (var folder in new[] { _folders.Llama, _folders.Mixtral })
        {
            var reference = ExactnessProbe.Reference(Ranks, Accumulation, Steps, folder: folder);
            foreach (var code in ShardingStrategy.Trained.Select(s => s.Code))
                AssertMatches($"{Path.GetFileName(folder)}/{code} under MPI", reference,
                    [.. outcomes.Select(o => o[$"{code}/{folder}"])]);
        }
    }

    /// <summary>
    /// A rank reads from the folder only what its strategy keeps: a quarter of the model per rank for GGG (p = G) on 4
    /// ranks, half for IGG (p = I, groups of 2), all of it for NIG (p = N); with bf16 GGG also its fp32 master slice
    /// (os = G), again a quarter. The model itself holds placeholders only.
    /// </summary>
    [Theory]
    [InlineData("GGG", ParoPrecision.Fp32, 0.25)]
    [InlineData("IGG", ParoPrecision.Fp32, 0.5)]
    [InlineData("NIG", ParoPrecision.Fp32, 1.0)]
    [InlineData("GGG", ParoPrecision.Bf16, 0.5)]
    public void ARank_ReadsOnlyTheSlicesItsStrategyKeeps(string code, ParoPrecision precision, double share)
    {
        var dtype = precision == ParoPrecision.Bf16
            ? TorchSharp.torch.ScalarType.BFloat16 : TorchSharp.torch.ScalarType.Float32;
        var read = InProcessCluster.Run(Ranks, GroupSize, comm =>
        {
            using var hf = HfModel.Open(_folders.Mixtral);
            using var model = Decoder.Placeholder((DecoderConfig)hf.Config, dtype);
            var held = model.parameters().Where(p => p.numel() > 1 && p.stride().Any(stride => stride != 0)).Sum(p
                => p.numel() * p.element_size());   // bytes not a stride-0 view of one value
            var source = new CountingSource(new FolderParameterSource(hf));
            using var trainer = ShardedTrainer.Create(model, new ShardingPlan(ShardingStrategy.Parse(code), GroupSize,
                Precision: precision), comm, null, source);
            return (source.Elements, held);
        });
        var total = ModelLayout.Count(_folders.Config(_folders.Mixtral));
        foreach (var (elements, _) in read) Assert.InRange(elements, (long)(share * total) - 2 * Ranks,
            (long)(share * total) + 2 * Ranks);
        Assert.All(read, r => Assert.True(r.held == 0, $"the placeholder model holds {r.held} bytes"));
    }

    private sealed class CountingSource(IParameterSource inner) : IParameterSource
    {
        public long Elements { get; private set; }

        public long Count => inner.Count;

        public void Fill(long offset, TorchSharp.torch.Tensor destination)
        {
            Elements += destination.numel();
            inner.Fill(offset, destination);
        }
    }

    private static void AssertMatches(string what, float[] reference, float[][] results)
    {
        foreach (var parameters in results)
        {
            var error = ExactnessProbe.RelativeError(parameters, reference);
            Assert.True(error <= Tolerance, $"{what}: relative error {error:E2} > {Tolerance:E0}");
        }
        Assert.True(results.All(r => r.SequenceEqual(results[0])), $"{what}: ranks disagree");
    }
}
