using Toolkit.Tests.Support;

namespace Toolkit.Tests.Cli;

/// <summary>A user error is one line, <c>error: ...</c>, naming the option, the value and what is valid, with exit code
/// 2 and no stack trace.</summary>
public sealed class CliErrorTests
{
    [Theory]
    [InlineData("paro train --strategy XYZ", "error: 'XYZ' is not a PaRO strategy")]
    [InlineData("paro train --ranks 3 --group-size 2", "error: --group-size 2: must divide --ranks (3)")]
    [InlineData("paro train --steps -1", "error: --steps -1: must be at least 1")]
    [InlineData("paro train --steps lots", "error: --steps takes an integer (got 'lots').")]
    [InlineData("paro train --launcher slurm --nodes 0",
        "error: --nodes 0: must be at least 1 (a Slurm job runs on one node or more)")]
    [InlineData("infer run --input datasets/infer/sentences-2k.jsonl --workers 0",
        "error: --workers 0: must be at least 1: no worker would run the job")]
    [InlineData("paro train --model huge",
        "error: --model huge: is not a model (no such preset or folder): give a preset (tiny, small, medium, base)")]
    [InlineData("model info --model /proc",
        "error: --model /proc: is not a model (a folder without config.json or manifest.json)")]
    [InlineData("paro train --model small --sequence-length 100",
        "error: --sequence-length 100: exceeds the model's context (64)")]
    [InlineData("infer run --gpt-model tiny",
        "error: --gpt-model was replaced by --model: a preset (tiny, small, medium, base)")]
    [InlineData("infer run --gpt-checkpoint runs/x", "error: --gpt-checkpoint was replaced by --model")]
    [InlineData("model init --arch falcon --out /tmp/toolkit-never",
        "error: --arch falcon: must be llama, qwen2, mistral, mixtral or qwen2_moe")]
    [InlineData("model init --out /tmp/toolkit-never --heads 3", "error: --heads 3: must divide --hidden (64)")]
    [InlineData("model init --arch llama", "error: --out: is required: the folder to write")]
    [InlineData("model export --out /tmp/toolkit-never",
        "error: --checkpoint: is required: the checkpoint folder to export")]
    [InlineData("model export /proc --out /tmp/toolkit-never",
        "error: --checkpoint /proc: is not a checkpoint folder (it has no manifest.json)")]
    [InlineData("paro train --stratgey NIG",
        "error: unknown option '--stratgey' for paro train. Valid options: --account, --accumulation,")]
    [InlineData("quickstart --ranks 0", "error: --ranks 0: must be at least 1")]
    [InlineData("collective plan --inter-bandwidth fast",
        "error: --inter-bandwidth fast: 'fast' is not a rate such as 100mbit or 1gbit.")]
    [InlineData("rl train --alpha 6", "error: --beta 5: must be greater than --alpha (6)")]
    [InlineData("rl train --task chess",
        "error: --task chess: unknown task; valid: addition, multiplication, countdown, longtail")]
    [InlineData("paro trian", "error: unknown command 'trian' for paro. Commands: plan, train, compare.")]
    [InlineData("paro train --runs-dir /proc/nope",
        "error: --runs-dir /proc/nope: a run folder cannot be created there")]
    [InlineData("rl train --compare ,", "error: --compare ,: names no correction; give some of none, tis, icepop, mis")]
    [InlineData("paro compare --strategies NNN,GNN", "error: GNN is not effective")]
    [InlineData("paro train --launcher local",
        "error: --launcher local: starts batch inference's workers; paro-train runs with inproc, mpi or slurm")]
    [InlineData("infer run --input datasets/infer/sentences-2k.jsonl --pipeline score --keep-columns score",
        "error: --keep-columns: 'score' is also a field the models write to each row; leave it out (or name the " +
            "stage otherwise)")]
    [InlineData("infer run --input datasets/infer/sentences-2k.jsonl --keep-columns id",
        "error: --keep-columns: names the id, which every output row has already; list other " +
            "columns")]
    [InlineData("infer run --input datasets/infer/sentences-2k.jsonl --group-size 2",
        "error: --group-size 2: groups ranks for PaRO and HO-Ring; batch inference has no groups")]
    [InlineData("infer run --input datasets/infer/sentences-2k.jsonl --launcher slurm --ranks 4 --nodes 3",
        "error: --nodes 3: must be at least 1 and divide --ranks (4)")]
    [InlineData("infer run --input datasets/infer/sentences-2k.jsonl --emulate 2x2",
        "error: --emulate 2x2: needs --launcher mpi and --ranks 4")]
    [InlineData("infer run --input datasets/infer/sentences-2k.jsonl --partition gpu",
        "error: --partition: is a Slurm option: add --launcher slurm")]
    public void UserError_IsOneLine_ExitCode2(string command, string expected)
    {
        var (code, output) = Repository.Run("dotnet", [Repository.CliDll, .. command.Split(' ')],
            TimeSpan.FromMinutes(1));
        Assert.Equal(2, code);
        var text = output.Trim();
        Assert.StartsWith(expected, text);
        Assert.DoesNotContain('\n', text);
        Assert.DoesNotContain("Unhandled", text);
    }

    [Fact]
    public void Verbose_AddsTheStackTrace()
    {
        var (code, output) = Repository.Run("dotnet", [Repository.CliDll, "paro", "train", "--steps", "-1",
            "--verbose"], TimeSpan.FromMinutes(1));
        Assert.Equal(2, code);
        Assert.Contains("   at ", output);
    }
}
