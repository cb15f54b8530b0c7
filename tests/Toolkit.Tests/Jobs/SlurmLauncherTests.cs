using System.Text.Json;
using Toolkit.BatchInference;
using Toolkit.Jobs;
using Toolkit.Paro;
using Toolkit.Runs;
using Toolkit.Tests.Support;

namespace Toolkit.Tests.Jobs;

/// <summary>A single-node Slurm cluster (localhost, 4 CPUs), started for <see cref="SlurmLauncherTests"/> by
/// build/slurm-cluster.sh.</summary>
public sealed class SingleNodeSlurm : IDisposable
{
    public SlurmCluster Cluster { get; } = SlurmCluster.SingleNode(cpus: 4);

    public void Dispose() => Cluster.Dispose();
}

/// <summary>Collects a job's metrics and its state changes (what the notebook and the CLI show).</summary>
internal sealed class RecordingProgress : IProgress<MetricPoint>, IProgress<JobStatus>
{
    private readonly List<MetricPoint> _metrics = [];
    private readonly List<JobStatus> _statuses = [];

    public void Report(MetricPoint value) { lock (_metrics) _metrics.Add(value); }

    public void Report(JobStatus value) { lock (_statuses) _statuses.Add(value); }

    public IReadOnlyList<MetricPoint> Metrics { get { lock (_metrics) return [.. _metrics]; } }

    public IReadOnlyList<JobStatus> Statuses { get { lock (_statuses) return [.. _statuses]; } }
}

/// <summary>
/// The Slurm launcher against a real Slurm (slurmctld, slurmd and munge really started; no root or namespaces needed):
/// a PaRO job submitted with sbatch equals the in-process run, its script and hosts are kept in the run folder, its
/// states come back as they happen; a job step inside an allocation (salloc); cancelling runs scancel; the errors a
/// user meets carry the scheduler's own reason and keep the run folder.
/// </summary>
[Collection(EmulatedClusterCollection.Name)]
public sealed class SlurmLauncherTests(SingleNodeSlurm slurm) : IClassFixture<SingleNodeSlurm>, IDisposable
{
    private readonly TemporaryFolder _runs = new("toolkit-slurm-runs-");

    public void Dispose() => _runs.Dispose();

    private ParoTrainOptions Options(int steps = 3) => new()
    {
        Sharding = new() { Strategy = "NGG" },
        Steps = steps,
        Launch = new() { Ranks = 4, GroupSize = 2, RunsDirectory = _runs.Path },
    };

    [Fact]
    public async Task Sbatch_RunsTheRanks_AndMatchesTheInProcessRun()
    {
        var options = Options();
        var inProcess = await ParoTrainJob.RunAsync(options);
        var progress = new RecordingProgress();
        // A runs folder with a space and a percent sign: the script's directives must quote and escape them.
        var slurmRun = await ParoTrainJob.RunAsync(options with { Launch = options.Launch with { Launcher
            = Launcher.Slurm, RanksPerNode = 4, RunsDirectory = Path.Combine(_runs.Path, "my runs 100%") } }, progress);

        Close.Losses(inProcess.Steps, slurmRun.Steps);
        Assert.Equal(inProcess.Comm, slurmRun.Comm);
        // The batch script is kept, readable and resubmittable; the job's record names it.
        var script = File.ReadAllText(Path.Combine(slurmRun.RunPath, "slurm", "job.sbatch"));
        Assert.Contains("#SBATCH --nodes=1", script);
        Assert.Contains("#SBATCH --ntasks-per-node=4", script);
        Assert.Contains("srun --mpi=pmi2", script);
        var record = JsonDocument.Parse(File.ReadAllText(Path.Combine(slurmRun.RunPath, "slurm",
            "job.json"))).RootElement;
        var jobId = record.GetProperty("jobId").GetString()!;
        Assert.Contains("COMPLETED", slurm.Cluster.Command("scontrol", "show", "job", jobId).Output);
        // Its states came back as they happened, and the metrics were read live from the run folder.
        var states = progress.Statuses.Select(s => s.State).ToList();
        Assert.Equal("submitted", states[0]);
        Assert.Contains("running", states);
        Assert.Equal("completed", states[^1]);
        Assert.Contains(progress.Metrics, m => m.Name == MetricNames.Loss);
        // Every rank's host is recorded, with its group.
        var hosts = JsonDocument.Parse(File.ReadAllText(Path.Combine(slurmRun.RunPath, JobHost.HostsFile))).RootElement;
        Assert.Equal(4, hosts.GetArrayLength());
        Assert.Equal([0, 0, 1, 1], hosts.EnumerateArray().Select(h => h.GetProperty("group").GetInt32()));
        Assert.Single(hosts.EnumerateArray().Select(h => h.GetProperty("host").GetString()).Distinct());
    }

    /// <summary>--max-restarts under sbatch: a rank SIGKILLed mid-run fails the job step; the batch script restarts the
    /// run from its latest checkpoint (toolkit rank-restart) and runs the step again inside the same allocation (one
    /// Slurm job), ending with the uninterrupted run's parameters.</summary>
    [Fact]
    public async Task Sbatch_ARankLost_RestartsInsideTheAllocation_WithTheUninterruptedParameters()
    {
        ParoTrainOptions On(string runs, int maxRestarts) => Options(steps: 6) with
        {
            Checkpoint = new() { Every = 2, MaxRestarts = maxRestarts },
            Launch = Options().Launch with { Launcher = Launcher.Slurm, RanksPerNode = 4,
                RunsDirectory = Directory.CreateDirectory(Path.Combine(_runs.Path, runs)).FullName },
        };
        var uninterrupted = await ParoTrainJob.RunAsync(On("clean", 0));
        var faulty = On("faulty", 2);
        File.WriteAllText(Path.Combine(faulty.Launch.RunsDirectory, Restarts.DrillFile),
            """{"rank":1,"step":5,"kill":true}""");
        var restarted = await ParoTrainJob.RunAsync(faulty);

        var restart = Assert.Single(Restarts.Read(restarted.RunPath));
        Assert.Equal((1, 4), (restart.Attempt, restart.Step));
        Assert.Contains("the job step (srun) exited with code", restart.Cause);
        var log = File.ReadAllText(Path.Combine(restarted.RunPath, "log.txt"));
        Assert.Single(log.Split('\n'), l => l.Contains("launch: sbatch", StringComparison.Ordinal));
        Assert.Equal([4, 5], restarted.Steps.Select(s => s.Step));
        Toolkit.Runtime.TorchRuntime.EnsureInitialized();   // the ranks ran elsewhere; this process reads their files
        Assert.Equal(Toolkit.Checkpoints.CheckpointManifest.ReadParameters(
                Toolkit.Checkpoints.CheckpointFolders.Final(uninterrupted.RunPath, 6)),
            Toolkit.Checkpoints.CheckpointManifest.ReadParameters(
                Toolkit.Checkpoints.CheckpointFolders.Final(restarted.RunPath, 6)));
    }

    [Fact]
    public async Task Cancelling_CancelsTheSlurmJob()
    {
        var progress = new RecordingProgress();
        using var cancel = new CancellationTokenSource();
        var options = Options(steps: 100000);
        var job = ParoTrainJob.RunAsync(options with { Launch = options.Launch with { Launcher = Launcher.Slurm,
            RanksPerNode = 4 } }, progress, cancel.Token);
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (!progress.Metrics.Any(m
            => m.Name == MetricNames.Loss) && !job.IsCompleted && DateTime.UtcNow < deadline) await Task.Delay(200);
        Assert.False(job.IsCompleted, job.Exception?.ToString());
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => job);
        var run = Directory.GetDirectories(_runs.Path).Single();
        var jobId = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "slurm",
            "job.json"))).RootElement.GetProperty("jobId").GetString()!;
        Assert.Equal("cancelled", progress.Statuses[^1].State);
        for (var i = 0; i < 60 && !slurm.Cluster.Command("scontrol", "show", "job",
            jobId).Output.Contains("JobState=CANCELLED"); i++) await Task.Delay(500);
        Assert.Contains("JobState=CANCELLED", slurm.Cluster.Command("scontrol", "show", "job", jobId).Output);
        Assert.Contains($"scancel {jobId}", File.ReadAllText(Path.Combine(run, "log.txt")));
        // toolkit jobs lists it from its run folder, with its Slurm job.
        var (code, output) = slurm.Cluster.Command("dotnet", Repository.CliDll, "jobs", "--runs-dir", _runs.Path);
        Assert.True(code == 0, output);
        Assert.Matches($@"{Path.GetFileName(run)}\s+paro-train\s+slurm\s+{jobId}\s+cancelled", output);
    }

    [Fact]
    public async Task UnknownPartition_FailsWithSbatchsReason_AndKeepsTheRunFolder()
    {
        var options = Options();
        var e = await Assert.ThrowsAsync<JobFailedException>(()
            => ParoTrainJob.RunAsync(options with { Launch = options.Launch with { Launcher = Launcher.Slurm,
                Slurm = new() { Partition = "gpu-a100" } } }));
        Assert.Contains("sbatch refused the job", e.Message);
        Assert.Contains("invalid partition", e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.True(File.Exists(Path.Combine(Directory.GetDirectories(_runs.Path).Single(), "slurm", "job.sbatch")));
    }

    [Fact]
    public async Task WithoutMunge_FailsWithSlurmsAuthenticationError()
    {
        // The same cluster, but the client's munge socket is not there (munged not running on this host).
        var broken = Path.Combine(_runs.Path, "slurm-no-munge.conf");
        File.WriteAllLines(broken, File.ReadAllLines(slurm.Cluster.Conf).Select(l => l.StartsWith("AuthInfo=",
            StringComparison.Ordinal) ? "AuthInfo=socket=/nonexistent/munge.sock" : l));
        Environment.SetEnvironmentVariable("SLURM_CONF", broken);
        try
        {
            var options = Options();
            var e = await Assert.ThrowsAsync<JobFailedException>(()
                => ParoTrainJob.RunAsync(options with { Launch = options.Launch with { Launcher = Launcher.Slurm,
                    RanksPerNode = 4 } }));
            Assert.Contains("sbatch refused the job", e.Message);
            Assert.Contains("munge", e.Message, StringComparison.OrdinalIgnoreCase);
            Assert.True(File.Exists(Path.Combine(Directory.GetDirectories(_runs.Path).Single(), "slurm",
                "job.sbatch")));
        }
        finally
        {
            Environment.SetEnvironmentVariable("SLURM_CONF", slurm.Cluster.Conf);
        }
    }

    [Fact]
    public async Task RequestLargerThanTheCluster_IsGivenUpWithTheSchedulersReason()
    {
        var options = Options();
        var progress = new RecordingProgress();
        var grace = SlurmJobLauncher.HopelessGrace;
        SlurmJobLauncher.HopelessGrace = TimeSpan.FromSeconds(5);   // two minutes by default
        JobFailedException e;
        try
        {
            e = await Assert.ThrowsAsync<JobFailedException>(()
                => ParoTrainJob.RunAsync(options with { Launch = options.Launch with { Launcher = Launcher.Slurm,
                    Nodes = 2 } }, progress));
        }
        finally
        {
            SlurmJobLauncher.HopelessGrace = grace;
        }
        Assert.Contains("cannot start: pending (PartitionNodeLimit)", e.Message);
        Assert.Contains("2 node(s) x 2 task(s)", e.Message);
        Assert.Contains(progress.Statuses, s => s.State == "pending" && s.Message.Contains("PartitionNodeLimit"));
        Assert.True(Directory.Exists(Directory.GetDirectories(_runs.Path).Single()));
    }

    [Fact]
    public async Task TimeLimit_EndsTheJob_WithSlurmsStateAndAHint()
    {
        // Slurm's smallest limit is a minute, checked every 30 s: this test takes 60-100 s.
        var options = Options(steps: 1000000);
        var progress = new RecordingProgress();
        var e = await Assert.ThrowsAsync<JobFailedException>(()
            => ParoTrainJob.RunAsync(options with { Launch = options.Launch with { Launcher = Launcher.Slurm,
                RanksPerNode = 4, Slurm = new() { Time = "1" } } }, progress));
        Assert.Contains("ended TIMEOUT", e.Message);
        Assert.Contains("reached its time limit (--time 1)", e.Message);
        Assert.Equal("timeout", progress.Statuses[^1].State);
        Assert.Contains(progress.Metrics, m => m.Name == MetricNames.Loss);   // it ran, and what it wrote is kept
        Assert.True(File.Exists(Path.Combine(Directory.GetDirectories(_runs.Path).Single(), "metrics.rank-0.jsonl")));
    }

    [Fact]
    public void InsideAnAllocation_TheRanksAreAJobStep()
    {
        // salloc grants the allocation and runs the CLI inside it (SLURM_JOB_ID set): --launcher slurm becomes an srun
        // step.
        var (code, output) = slurm.Cluster.Command("salloc", "-N", "1", "-n", "4", "dotnet", Repository.CliDll, "paro",
            "train", "--launcher", "slurm",
            "--ranks", "4", "--ranks-per-node", "4", "--steps", "2", "--runs-dir", _runs.Path);
        Assert.True(code == 0, output);
        Assert.Contains("job step of allocation", output);
        Assert.Contains("step    2/2", output);
        var run = Directory.GetDirectories(_runs.Path).Single();
        Assert.False(File.Exists(Path.Combine(run, "slurm", "job.sbatch")));
        Assert.Contains("srun --mpi=pmi2", File.ReadAllText(Path.Combine(run, "log.txt")));
    }

    [Fact]
    public async Task BatchInference_AsASlurmJob_WritesEveryRecordOnce()
    {
        var input = Path.Combine(_runs.Path, "sentences.jsonl");
        SentenceDataset.Write(input, 120, seed: 5, badEvery: 60);
        var result = await InferJob.RunAsync(new InferJobOptions
        {
            Data = new() { Input = input },
            Scheduling = new() { ShardSize = 40 },
            Launch = InferJobOptions.DefaultLaunch with
            {
                Launcher = Launcher.Slurm, Ranks = 3, Nodes = 1, RunsDirectory = _runs.Path,
            },
        });
        Assert.Equal(("completed", 118L, 2L), (result.State, result.OutputRecords, result.Quarantined));
        Assert.True(InferOutput.Verify(result.JobFolder, new JsonlSource(input, "id", "text")).ExactlyOnce);
        Assert.Equal(2, result.Workers.Count);
        var script = File.ReadAllText(Path.Combine(result.JobFolder, "slurm", "job.sbatch"));
        Assert.Contains("#SBATCH --ntasks-per-node=3", script);
        // The same rank entry point as every job's; a worker that fails does not end the others.
        Assert.Contains($"rank --run {result.JobFolder}", script);
        Assert.DoesNotContain("--kill-on-bad-exit=1", script);
    }

    [Fact]
    public void Cli_WithoutSlurm_SaysWhatToInstall()
    {
        using var empty = new TemporaryFolder("toolkit-no-slurm-");
        var dotnet = Environment.ProcessPath!;   // the dotnet host running the tests
        var (code, output) = Repository.Run(dotnet, [Repository.CliDll, "paro", "train", "--launcher", "slurm",
            "--steps", "1", "--runs-dir", _runs.Path],
            TimeSpan.FromSeconds(60), environment: new Dictionary<string, string> { ["PATH"] = empty.Path });
        Assert.Equal(2, code);
        Assert.Contains("sbatch: Slurm's client commands were not found on PATH", output);
        Assert.Empty(Directory.GetDirectories(_runs.Path));   // nothing was started, no folder made
    }

    [Fact]
    public void Options_SlurmOnlySettings_NeedTheSlurmLauncher()
    {
        Assert.Contains("--launcher slurm",
            Assert.Throws<ArgumentOutOfRangeException>(()
                => new LaunchOptions { Slurm = new() { Partition = "debug" } }.Validate()).Message);
        Assert.Contains("set --ranks 8",
            Assert.Throws<ArgumentOutOfRangeException>(() => new LaunchOptions { Launcher = Launcher.Slurm,
                Nodes = 4 }.Validate()).Message);
        Assert.Contains("not a Slurm time limit",
            Assert.Throws<ArgumentOutOfRangeException>(() => new LaunchOptions { Launcher = Launcher.Slurm,
                Slurm = new() { Time = "an hour" } }.Validate()).Message);
        var ok = new LaunchOptions { Launcher = Launcher.Slurm, Ranks = 8, GroupSize = 4,
            Slurm = new() { Time = "1-02:00:00" } }.Validate();
        Assert.Equal((2, 4), (ok.EffectiveNodes, ok.EffectiveRanksPerNode));   // groups follow nodes
        Assert.Equal(["--nodes=2", "--ntasks-per-node=4", "--time=1-02:00:00", "--qos=debug", "--comment=a b"],
            SlurmJobLauncher.ResourceArguments(ok, SlurmClient.SplitArguments("--qos=debug \"--comment=a b\"")));
    }

    [Fact]
    public void StateParsing_ReadsScontrolAndSacct()
    {
        var s = SlurmClient.ParseScontrol(
            "JobId=7 JobName=x JobState=TIMEOUT Reason=TimeLimit Dependency=(null) ExitCode=0:15 NodeList=node[0-1]")!;
        Assert.Equal(("TIMEOUT", "TimeLimit", "node[0-1]", "0:15"), (s.State, s.Reason, s.Nodes, s.ExitCode));
        Assert.True(s.IsFinal);
        var a = SlurmClient.ParseSacct("CANCELLED by 0|None|node0|0:0\n")!;
        Assert.Equal(("CANCELLED", null, "node0"), (a.State, a.Reason, a.Nodes));
        Assert.False(new SlurmJobState("PENDING", "Resources", null, null, "squeue").IsFinal);
        Assert.Equal("pending (Resources)", new SlurmJobState("PENDING", "Resources", null, null, "squeue").ToString());
    }
}
