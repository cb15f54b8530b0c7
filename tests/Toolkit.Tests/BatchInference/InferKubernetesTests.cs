using k8s;
using k8s.Models;
using Toolkit.BatchInference;
using Toolkit.Cli;
using Toolkit.Tests.Support;
using static Toolkit.Tests.BatchInference.Launches;

namespace Toolkit.Tests.BatchInference;

/// <summary>
/// The Kubernetes manifests, read back through the official client's models: the objects and their wiring (selectors,
/// service port, token secret, shared volume, drain time, autoscaler bounds), and the pods' command lines accepted by
/// the toolkit's own parser. No cluster is needed (none is available here); --apply without one fails with a clear
/// message after writing the files. And <c>--job-name</c>, which makes the coordinator's start idempotent: a second
/// start resumes the same folder.
/// </summary>
public sealed class InferKubernetesTests : IDisposable
{
    private readonly TemporaryFolder _folder = new("toolkit-k8s-");

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task Manifests_RoundTripThroughTheClientModels_AndWireTogether()
    {
        var options = new InferKubernetesOptions
        {
            Job = new InferJobOptions
            {
                Data = new() { Input = "/data/in.jsonl" },
                Launch = InferJobOptions.DefaultLaunch with { RunsDirectory = "/data/runs" },
                Scheduling = new() { Workers = 3, MinWorkers = 2, MaxWorkers = 6 },
                Models = new() { Replicas = 2, Threads = 2 },
            },
            Name = "embed-job", Namespace = "research", Out = _folder.Path, DrainSeconds = 90, GpusPerWorker = 1,
            NodeSelector = "pool=gpu,zone=a", Tolerations = "nvidia.com/gpu:NoSchedule,team=ml:NoExecute",
        };
        var files = await InferKubernetes.WriteAsync(options);
        Assert.Equal(5, files.Count);
        var objects = KubernetesYaml.LoadAllFromString(File.ReadAllText(Path.Combine(_folder.Path, "all.yaml")));
        var secret = Assert.Single(objects.OfType<V1Secret>());
        var service = Assert.Single(objects.OfType<V1Service>());
        var job = objects.OfType<V1Job>().Single(j => j.Metadata.Name == "embed-job-coordinator");
        var workers = objects.OfType<V1Job>().Single(j => j.Metadata.Name == "embed-job-workers");
        Assert.Equal(4, objects.Count);   // no Deployment, no autoscaler: Jobs complete
        Assert.All(objects.Cast<IKubernetesObject<V1ObjectMeta>>(), o => Assert.Equal("research",
            o.Metadata.NamespaceProperty));
        Assert.Equal(43, secret.StringData["token"].Length);

        // The service selects the coordinator's pod, on the port the coordinator listens on.
        Assert.All(service.Spec.Selector, kv => Assert.Equal(kv.Value, job.Spec.Template.Metadata.Labels[kv.Key]));
        Assert.Equal(InferKubernetes.Port, service.Spec.Ports.Single().Port);
        var coordinator = job.Spec.Template.Spec.Containers.Single();
        Assert.Equal(InferKubernetes.Port, coordinator.Ports.Single().ContainerPort);
        Assert.Equal((CoordinatorTransports.TokenVariable, secret.Metadata.Name), (coordinator.Env.Single().Name,
            coordinator.Env.Single().ValueFrom.SecretKeyRef.Name));

        // Workers: a work-queue Job (3 pods at once, no completion count) whose pods reach the service by name, carry
        // the token, know the job folder (a finished job ends them with success), drain for 90 s, get a GPU each.
        Assert.Equal((3, (int?)null, "OnFailure"), (workers.Spec.Parallelism, workers.Spec.Completions,
            workers.Spec.Template.Spec.RestartPolicy));
        Assert.Equal(90, workers.Spec.Template.Spec.TerminationGracePeriodSeconds);
        var worker = workers.Spec.Template.Spec.Containers.Single();
        Assert.Contains($"https://{service.Metadata.Name}:{InferKubernetes.Port}", worker.Command);
        Assert.Equal("/data/runs/embed-job", worker.Command[worker.Command.IndexOf("--job-folder") + 1]);
        Assert.Equal((CoordinatorTransports.TokenVariable, secret.Metadata.Name), (worker.Env.Single().Name,
            worker.Env.Single().ValueFrom.SecretKeyRef.Name));
        Assert.Equal(("4", "1"), (worker.Resources.Requests["cpu"].ToString(),
            worker.Resources.Limits["nvidia.com/gpu"].ToString()));
        Assert.Equal("toolkit-data", workers.Spec.Template.Spec.Volumes.Single().PersistentVolumeClaim.ClaimName);
        foreach (var pod in new[] { job.Spec.Template.Spec, workers.Spec.Template.Spec })
        {
            Assert.Equal(new Dictionary<string, string> { ["pool"] = "gpu", ["zone"] = "a" }, pod.NodeSelector);
            Assert.Equal(["nvidia.com/gpu Exists - NoSchedule", "team Equal ml NoExecute"],
                pod.Tolerations.Select(t => $"{t.Key} {t.OperatorProperty} {t.Value ?? "-"} {t.Effect}"));
        }

        // Both pods' command lines are valid toolkit command lines, and neither holds the token (it comes from the
        // Secret, through the environment). The coordinator's runs through sh, which turns "completed with failures"
        // (exit code 3) into success: a finished job, its failures listed, not a pod to restart.
        Assert.Equal(["sh", "-c", InferKubernetes.CompletedWithFailures, "toolkit"], coordinator.Command.Take(4));
        Assert.Equal("/data/runs", coordinator.Command[coordinator.Command.IndexOf("--runs-dir") + 1]);
        Assert.DoesNotContain(coordinator.Command.Concat(worker.Command), a => a.Contains("token",
            StringComparison.OrdinalIgnoreCase) || a.Contains(secret.StringData["token"], StringComparison.Ordinal));
        foreach (var command in new[] { coordinator.Command.Skip(3), worker.Command })
        {
            var parse = CliApp.CreateRoot().Parse([.. command.Skip(1)]);
            Assert.True(parse.Errors.Count == 0, string.Join("; ", parse.Errors.Select(e => e.Message)));
        }
        Assert.Contains("--job-name", coordinator.Command);
        Assert.DoesNotContain("--insecure", coordinator.Command);   // TLS in the cluster too
    }

    /// <summary>The pods' own command lines, run here: the coordinator on every interface serves TLS with a
    /// certificate it keeps in the job folder; the worker, given an https address and the job folder only, pins the
    /// fingerprint from there and completes the job (every record once).</summary>
    [Fact]
    public async Task Cli_ThePodsCommands_RunTheJobOverTls_TheWorkerPinningFromTheJobFolder()
    {
        var input = Inputs.Jsonl(_folder.Path, 40);
        var runs = Path.Combine(_folder.Path, "runs");
        var objects = InferKubernetes.Manifests(new InferKubernetesOptions
        {
            Job = new InferJobOptions { Data = new() { Input = input }, Scheduling = new() { Workers = 1,
                ShardSize = 10 }, Launch = InferJobOptions.DefaultLaunch with { RunsDirectory = runs } },
            Name = "tls-job",
        }, "t0k3n-for-the-pods");
        var pods = objects.OfType<V1Job>().Select(j => j.Spec.Template.Spec.Containers.Single()).ToList();
        var (coordinator, worker) = (pods[0].Command.Skip(4).ToList(), pods[1].Command.Skip(1).ToList());
        var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        coordinator[coordinator.IndexOf("--port") + 1] = $"{port}";
        var address = worker.IndexOf("--coordinator") + 1;
        Assert.StartsWith("https://", worker[address]);
        worker[address] = $"https://127.0.0.1:{port}";
        var environment = new Dictionary<string, string>
        {
            [CoordinatorTransports.TokenVariable] = "t0k3n-for-the-pods",
        };
        var job = Task.Run(() => Repository.Run("dotnet", [Repository.CliDll, .. coordinator], TimeSpan.FromMinutes(3),
            environment: environment));
        var (code, output) = Repository.Run("dotnet", [Repository.CliDll, .. worker], TimeSpan.FromMinutes(3),
            environment: environment);
        Assert.True(code == 0, output);
        Assert.Contains("pinning the coordinator's certificate from", output);
        var (jobCode, jobOutput) = await job;
        Assert.True(jobCode == 0, jobOutput);
        var folder = Path.Combine(runs, "tls-job");
        Assert.True(File.Exists(Path.Combine(folder, CoordinatorTls.CertificateFile)));
        Assert.True(InferOutput.Verify(folder, new JsonlSource(input, "id", "text")).ExactlyOnce);
    }

    [Theory]
    [InlineData("pool", null, "nodeSelector", "entry 'pool' is not key=value")]
    [InlineData(null, "gpu:Sometimes", "tolerations", "entry 'gpu:Sometimes' is not key[=value]:Effect")]
    public void BadPlacements_AreRefused_NamingTheOption(string? selector, string? tolerations, string option,
        string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => InferKubernetes.Manifests(new InferKubernetesOptions
        {
            Job = new InferJobOptions { Data = new() { Input = "/data/in.jsonl" } },
            NodeSelector = selector, Tolerations = tolerations,
        }, "t"));
        Assert.Contains(expected, e.Message);
        Assert.Equal(option, e.ParamName);
    }

    /// <summary>A work-queue pod that starts after the job finished, or outlives its coordinator, exits 0.</summary>
    [Fact]
    public void Cli_AWorkerThatFindsItsJobFinished_EndsWithSuccess()
    {
        var folder = Path.Combine(_folder.Path, "job");
        Directory.CreateDirectory(folder);
        Toolkit.Runtime.ToolkitJson.Write(Path.Combine(folder, InferLayout.StatusFile), new InferStatus(10, 10, 0, 1,
            1, 0, [], 0, null, [], [], 0, 0, 1));
        var (code, output) = Repository.Run("dotnet", [Repository.CliDll, "infer", "worker", "--coordinator",
            "http://127.0.0.1:1", "--job-folder", folder, "--grace", "1"], TimeSpan.FromMinutes(1));
        Assert.True(code == 0, output);
        Assert.Contains("is finished: nothing to do", output);
    }

    /// <summary>A pod waiting for the coordinator's certificate in the job folder ends with success when the job is
    /// found finished there meanwhile.</summary>
    [Fact]
    public async Task Cli_AWorkerWaitingForTheCertificate_EndsWithSuccess_WhenTheJobFinishes()
    {
        var folder = Directory.CreateDirectory(Path.Combine(_folder.Path, "waiting")).FullName;
        var worker = Task.Run(() => Repository.Run("dotnet", [Repository.CliDll, "infer", "worker", "--coordinator",
            "https://127.0.0.1:1", "--job-folder", folder, "--grace", "60"], TimeSpan.FromMinutes(1),
            environment: new Dictionary<string, string> { [CoordinatorTransports.TokenVariable] = "t" }));
        await Task.Delay(TimeSpan.FromSeconds(5));   // started and waiting (a worker starting late says so)
        Toolkit.Runtime.ToolkitJson.Write(Path.Combine(folder, InferLayout.StatusFile), new InferStatus(10, 10, 0, 1,
            1, 0, [], 0, null, [], [], 0, 0, 1));
        var (code, output) = await worker;
        Assert.True(code == 0, output);
        Assert.DoesNotContain("nothing to do", output);
    }

    [Fact]
    public async Task Apply_WithoutACluster_SaysSo_AfterWritingTheManifests()
    {
        var home = Environment.GetEnvironmentVariable("KUBECONFIG");
        Environment.SetEnvironmentVariable("KUBECONFIG", Path.Combine(_folder.Path, "no-such-kubeconfig"));
        try
        {
            var e = await Assert.ThrowsAsync<InvalidOperationException>(()
                => InferKubernetes.WriteAsync(new InferKubernetesOptions
            {
                Job = new InferJobOptions {
                    Data = new() { Input = "/data/in.jsonl" },
                }, Out = _folder.Path, Apply = true,
            }));
            Assert.Contains("--apply needs a configured cluster", e.Message);
            Assert.True(File.Exists(Path.Combine(_folder.Path, "all.yaml")));
        }
        finally
        {
            Environment.SetEnvironmentVariable("KUBECONFIG", home);
        }
    }

    [Fact]
    public async Task AFixedJobName_MakesStartsIdempotent_TheSecondStartResumes()
    {
        var input = Inputs.Jsonl(_folder.Path, 30);
        var spec = new InferJobOptions
        {
            Data = new() { Input = input },
            JobName = "nightly",
            Scheduling = new() { Workers = 1, ShardSize = 10 },
            Launch = InProcess(_folder.Path),
        };
        var first = await InferJob.RunAsync(spec);
        var second = await InferJob.RunAsync(spec);
        Assert.Equal(Path.Combine(_folder.Path, "nightly"), first.JobFolder);
        Assert.Equal((first.JobFolder, "completed", 0.0), (second.JobFolder, second.State, second.RecordsPerSecond));
        var other = await Assert.ThrowsAsync<ArgumentException>(() => InferJob.RunAsync(spec with {
            Scheduling = spec.Scheduling with { ShardSize = 5 },
        }));
        Assert.Contains("holds another job", other.Message);
        Assert.Equal("JobName",
            Assert.Throws<ArgumentException>(() => (spec with { JobName = "../escape" }).Check()).ParamName);
    }
}
