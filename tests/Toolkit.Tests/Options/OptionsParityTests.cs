using System.CommandLine;
using Toolkit.Cli;
using Toolkit.Comm;
using Toolkit.Options;
using Toolkit.Paro;
using Toolkit.Quickstart;
using Toolkit.Runtime;

namespace Toolkit.Tests.Options;

/// <summary>
/// Every option exists once, on its options record: each CLI command offers exactly its record's options
/// (plus front-end ones such as --json), with the record's description; the binder gives one grammar and
/// one set of errors. (The notebook magics are checked against the same records in Toolkit.Interactive.Tests.)
/// </summary>
public sealed class OptionsParityTests
{
    public static TheoryData<string, Type> Commands() => new()
    {
        { "info", typeof(ToolkitInfoOptions) },
        { "quickstart", typeof(QuickstartOptions) },
        { "paro plan", typeof(ParoPlanOptions) },
        { "paro train", typeof(ParoTrainOptions) },
        { "paro compare", typeof(ParoCompareOptions) },
        { "collective plan", typeof(CollectivePlanOptions) },
        { "bench paro", typeof(ParoBenchmarkOptions) },
        { "bench collectives", typeof(CollectiveBenchOptions) },
        { "rl train", typeof(Toolkit.Rl.RlRunOptions) },
        { "bench rl", typeof(Toolkit.Rl.RlBenchmarkOptions) },
        { "infer run", typeof(Toolkit.BatchInference.InferJobOptions) },
        { "infer resume", typeof(Toolkit.BatchInference.InferJobOptions) },
        { "infer chaos", typeof(Toolkit.BatchInference.ChaosOptions) },
        { "infer k8s", typeof(Toolkit.BatchInference.InferKubernetesOptions) },
        { "bench infer", typeof(Toolkit.BatchInference.InferBenchmarkOptions) },
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public void CliCommand_OffersExactlyItsRecordsOptions(string path, Type record)
    {
        Command command = CliApp.CreateRoot();
        foreach (var word in path.Split(' ')) command = command.Subcommands.Single(c => c.Name == word);
        var specs = OptionSchema.For(record);
        var cli = command.Options.Where(o => !CliApp.FrontEndOptions.Contains(o.Name)).ToList();
        Assert.Equal(specs.Select(s => s.Name).Order(StringComparer.Ordinal),
            cli.Select(o => o.Name).Order(StringComparer.Ordinal));
        foreach (var spec in specs)
        {
            var option = cli.Single(o => o.Name == spec.Name);
            Assert.StartsWith(spec.Description, option.Description);
            Assert.Equal(spec.Alias is null ? [] : [spec.Alias], option.Aliases);
        }
    }

    [Fact]
    public void Schema_FlattensGroups_NamesInKebabCase_AndTakesDefaultsFromTheRecord()
    {
        var specs = OptionSchema.For<ParoTrainOptions>();
        var groupSize = specs.Single(s => s.Name == "--group-size");
        Assert.Equal(["Launch", "GroupSize"], groupSize.Path.Select(p => p.Name));
        Assert.Equal("2", groupSize.DefaultText);
        Assert.Equal("--np", specs.Single(s => s.Name == "--ranks").Alias);
        // this job's AdamW default, not AdamW's own
        Assert.Equal("0.95", specs.Single(s => s.Name == "--beta2").DefaultText);
        Assert.Equal(["inproc", "mpi", "slurm", "local", "external"],
            specs.Single(s => s.Name == "--launcher").Choices);
        Assert.Equal(["ring", "native", "hierarchical", "ho-ring"],
            specs.Single(s => s.Name == "--collectives").Choices);
        Assert.DoesNotContain(OptionSchema.For<ParoCompareOptions>(), s => s.Name == "--strategy");
        Assert.DoesNotContain(OptionSchema.For<ParoBenchmarkOptions>(), s => s.Name == "--launcher");
    }

    [Fact]
    public void Binder_AppliesValuesOverDefaults_AndRefusesBadOnesWithTheValidList()
    {
        var o = OptionBinder.Bind(new ParoTrainOptions(), [new("--group-size", "4"), new("np", "8"), new("--precision",
            "BF16"), new("--collectives", "ho-ring"), new("--data", "none")], "paro train");
        Assert.Equal((8, 4, ParoPrecision.Bf16, CollectiveAlgorithm.HoRing, null), (o.Launch.Ranks, o.Launch.GroupSize,
            o.Sharding.Precision, o.Sharding.Collectives, o.Data.Path));
        Assert.Equal(20, o.Steps);
        Assert.Equal("--steps takes an integer (got 'lots').",
            Assert.Throws<OptionException>(() => OptionBinder.Bind(new ParoTrainOptions(), [new("--steps", "lots")],
                "paro train")).Message);
        Assert.Equal("--launcher must be one of inproc, mpi, slurm, local, external (got 'slurmx').",
            Assert.Throws<OptionException>(() => OptionBinder.Bind(new ParoTrainOptions(), [new("--launcher",
                "slurmx")], "paro train")).Message);
        var unknown = Assert.Throws<OptionException>(() => OptionBinder.Bind(new ParoTrainOptions(), [new("--stratgey",
            "NIG")], "paro train")).Message;
        Assert.StartsWith(
            "unknown option '--stratgey' for paro train. Valid options: --account, --accumulation, --beta1,", unknown);
    }

    [Fact]
    public void ValidationErrors_NameTheOption_AndTheValue()
    {
        var specs = OptionSchema.For<ParoTrainOptions>();
        var e = Assert.ThrowsAny<ArgumentException>(() => new ParoTrainOptions { Steps = -1 }.Validate());
        Assert.Equal("--steps -1: must be at least 1", OptionException.Describe(e, specs));
        e = Assert.ThrowsAny<ArgumentException>(() => new ParoTrainOptions { Launch = new() { Ranks = 3 } }.Validate());
        Assert.Equal("--group-size 2: must divide --ranks (3)", OptionException.Describe(e, specs));
    }

    [Fact]
    public void ConfigFile_UsesTheSameNames_AndRefusesUnknownKeys()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, """
                { "steps": 5, "launch": { "ranks": 2, "groupSize": 1, "launcher": "mpi" },
                  "sharding": { "strategy": "zero3", "precision": "bf16" } }
                """);
            var o = OptionBinder.ReadConfig<ParoTrainOptions>(path);
            Assert.Equal((5, 2, 1, Toolkit.Jobs.Launcher.Mpi, "zero3", ParoPrecision.Bf16), (o.Steps, o.Launch.Ranks,
                o.Launch.GroupSize, o.Launch.Launcher, o.Sharding.Strategy, o.Sharding.Precision));
            File.WriteAllText(path, """{ "stepz": 5 }""");
            Assert.Contains("stepz",
                Assert.Throws<OptionException>(() => OptionBinder.ReadConfig<ParoTrainOptions>(path)).Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
