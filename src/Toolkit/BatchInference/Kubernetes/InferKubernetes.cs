using k8s;
using k8s.Models;
using Toolkit.Options;

namespace Toolkit.BatchInference;

/// <summary>A batch-inference job on Kubernetes: the job spec plus where and how its pods run.</summary>
internal sealed record InferKubernetesOptions
{
    /// <summary>The job (input and runs folder are paths inside the pods, on the shared volume).</summary>
    // The pods decide where the coordinator and workers run, and how they talk.
    [OptionGroup(Exclude = ["launcher", "ranks", "group-size", "emulate", "inter-bandwidth", "inter-latency",
        "nics-per-node", "nodes", "ranks-per-node", "gpus-per-node", "partition", "time", "account", "slurm-args",
        "slurm-submit", "bind", "port", "insecure"])]
    public InferJobOptions Job { get; init; } = new() { Launch = InferJobOptions.DefaultLaunch with { RunsDirectory
        = "/data/runs" } };

    /// <summary>The container image holding the toolkit command (the LmToolkit.Cli tool).</summary>
    [Option("Container image with the toolkit command on its PATH (e.g. a .NET runtime image with dotnet tool " +
        "install LmToolkit.Cli).")]
    public string Image { get; init; } = "lmtoolkit/toolkit:latest";

    /// <summary>Name prefix of every object.</summary>
    [Option("Name prefix of the objects (DNS label).")]
    public string Name { get; init; } = "infer";

    /// <summary>The namespace.</summary>
    [Option("Kubernetes namespace.", Name = "namespace")]
    public string Namespace { get; init; } = "default";

    /// <summary>A ReadWriteMany volume claim holding the input and the job folders, mounted at /data in every
    /// pod.</summary>
    [Option("ReadWriteMany persistent volume claim mounted at /data in every pod: the input and the job folder live " +
        "there (the coordinator's SQLite state included).")]
    public string VolumeClaim { get; init; } = "toolkit-data";

    /// <summary>Seconds a preempted worker gets to drain the shards it holds (SIGTERM) before it is killed.</summary>
    [Option("Seconds a worker pod gets after SIGTERM (preemption, scale-down) to finish the shards it holds.")]
    public int DrainSeconds { get; init; } = 120;

    /// <summary>GPUs each worker pod requests (<c>nvidia.com/gpu</c>); 0: none.</summary>
    [Option("GPUs each worker pod requests (nvidia.com/gpu resource limit; 0: none).")]
    public int GpusPerWorker { get; init; }

    /// <summary>Node labels the pods must match, as <c>key=value,key=value</c>.</summary>
    [Option("Node labels every pod must match, as key=value,key=value (a nodeSelector).")]
    public string? NodeSelector { get; init; }

    /// <summary>Taints the pods tolerate, as <c>key[=value]:Effect,...</c>.</summary>
    [Option("Taints every pod tolerates, as key[=value]:Effect,... (Effect: NoSchedule, PreferNoSchedule or " +
        "NoExecute), e.g. nvidia.com/gpu:NoSchedule.")]
    public string? Tolerations { get; init; }

    /// <summary>Folder the manifests are written to.</summary>
    [Option("Folder the manifests are written to (one YAML file per object, and all.yaml).")]
    public string Out { get; init; } = "k8s";

    /// <summary>Also create the objects in the cluster of the current kubeconfig (otherwise only write them: a dry
    /// run).</summary>
    [Option("Also create the objects in the cluster of the current kubeconfig (without it, a dry run: the manifests " +
        "are only written).")]
    public bool Apply { get; init; }
}

/// <summary>
/// Kubernetes manifests for a batch-inference job, built with the official client's models: a Secret (the token), the
/// coordinator as a Job with a fixed job folder (<c>--job-name</c>: restarted by Kubernetes if its pod dies, it resumes
/// from the SQLite state on the shared volume) behind a Service, and the workers as a second Job in the work-queue
/// pattern: <c>--workers</c> pods in parallel, each exiting 0 when no work is left (or when it finds the job finished),
/// so the Job completes; SIGTERM drains, and a killed pod's shards are redone.
/// </summary>
internal static class InferKubernetes
{
    /// <summary>The coordinator's gRPC port in the pods.</summary>
    public const int Port = 50051;

    /// <summary>
    /// The coordinator's shell wrapper (the pod's first process): it passes SIGTERM on to the coordinator, which stops
    /// cleanly, and makes a job that completed with failed shards (exit code 3) a completed job whose failures are
    /// listed in its folder, not a pod for Kubernetes to restart.
    /// </summary>
    public const string CompletedWithFailures = "\"$0\" \"$@\" & pid=$!; trap 'kill -TERM $pid' TERM INT; " +
        "wait $pid; code=$?; while kill -0 $pid 2>/dev/null; do wait $pid; code=$?; done; " +
        "[ $code -eq 3 ] && exit 0; exit $code";

    /// <summary>The objects, in the order to create them.</summary>
    /// <exception cref="ArgumentException">A name, node selector or toleration Kubernetes would refuse.</exception>
    public static IReadOnlyList<IKubernetesObject<V1ObjectMeta>> Manifests(InferKubernetesOptions o, string token)
    {
        if (!System.Text.RegularExpressions.Regex.IsMatch(o.Name, "^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$"))
            throw new ArgumentException($"'{o.Name}' is not a DNS label (lower-case letters, digits and '-')",
                nameof(o));
        if (string.IsNullOrWhiteSpace(o.Job.Data.Input)) throw new ArgumentException(
            "an input file is required (--input, a path inside the pods, e.g. /data/in.jsonl)", nameof(o));
        if (o.GpusPerWorker < 0) throw new ArgumentOutOfRangeException(nameof(o), o.GpusPerWorker,
            "--gpus-per-worker must not be negative");
        if (o.Job.Data.Output is { } output && !output.StartsWith("/data/", StringComparison.Ordinal))
            throw new ArgumentException(
                $"--output {output}: every pod must see it: name a folder on the shared volume, under /data/",
                nameof(o));
        var placement = PodPlacement.Parse(o.NodeSelector, o.Tolerations);
        var job = o.Job;
        var labels = (string role) => new Dictionary<string, string> { ["app.kubernetes.io/name"] = "lmtoolkit-infer",
            ["app.kubernetes.io/instance"] = o.Name, ["app.kubernetes.io/component"] = role };
        var meta = (string name, string role) => new V1ObjectMeta { Name = name, NamespaceProperty = o.Namespace,
            Labels = labels(role) };
        var secret = $"{o.Name}-token";
        var tokenEnv = new V1EnvVar { Name = CoordinatorTransports.TokenVariable,
            ValueFrom = new V1EnvVarSource { SecretKeyRef = new V1SecretKeySelector { Key = "token",
                Name = secret } } };
        var volume = new V1Volume { Name = "data",
            PersistentVolumeClaim = new V1PersistentVolumeClaimVolumeSource { ClaimName = o.VolumeClaim } };
        var mount = new V1VolumeMount { MountPath = "/data", Name = "data" };
        // The coordinator's command line, from the options' declarations: every setting of the job that is not a
        // default, as an external coordinator on every interface (the workers are the other Job's pods). Coordinator
        // and workers read the token from the Secret, through their environment: never from a command line.
        var coordinatorJob = job with
        {
            Launch = job.Launch with { Launcher = Jobs.Launcher.External },
            // Beyond loopback the coordinator serves TLS with a certificate it keeps in the job folder; the workers
            // pin its fingerprint from there (the shared volume), so in-cluster calls are private too.
            Service = job.Service with { Bind = "0.0.0.0", Port = Port, Token = null, Insecure = false },
            JobName = job.JobName ?? o.Name,
        };
        // Against defaults whose runs folder no pod has: the folder always goes on the command line (the default
        // comes from TOOLKIT_RUNS_DIR where the manifests are written, not in the pod).
        var defaults = new InferJobOptions { Launch = InferJobOptions.DefaultLaunch with { RunsDirectory = "" } };
        List<string> run = ["sh", "-c", CompletedWithFailures, "toolkit", .. Jobs.ChildCommands.InferRun,
            .. OptionSchema.Arguments(coordinatorJob, defaults)];
        var coordinator = new V1Job
        {
            ApiVersion = "batch/v1", Kind = "Job", Metadata = meta($"{o.Name}-coordinator", "coordinator"),
            Spec = new V1JobSpec
            {
                BackoffLimit = 6,
                Template = new V1PodTemplateSpec
                {
                    Metadata = new V1ObjectMeta { Labels = labels("coordinator") },
                    Spec = placement.Apply(new V1PodSpec
                    {
                        RestartPolicy = "OnFailure",
                        Containers = [new V1Container
                        {
                            Name = "coordinator", Image = o.Image, Command = run, Env = [tokenEnv],
                            Ports = [new V1ContainerPort { ContainerPort = Port, Name = "grpc" }],
                            VolumeMounts = [mount],
                        }],
                        Volumes = [volume],
                    }),
                },
            },
        };
        var service = new V1Service
        {
            ApiVersion = "v1", Kind = "Service", Metadata = meta($"{o.Name}-coordinator", "coordinator"),
            Spec = new V1ServiceSpec { Selector = labels("coordinator"), Ports = [new V1ServicePort { Port = Port,
                Name = "grpc", TargetPort = Port }] },
        };
        var worker = new InferWorkerOptions { Coordinator = $"https://{o.Name}-coordinator:{Port}", Grace = 300,
            JobFolder = $"{job.Launch.RunsDirectory.TrimEnd('/')}/{coordinatorJob.JobName}" };
        var limits = o.GpusPerWorker > 0
            ? new Dictionary<string, ResourceQuantity> { ["nvidia.com/gpu"] = new($"{o.GpusPerWorker}") } : null;
        var workers = new V1Job
        {
            ApiVersion = "batch/v1", Kind = "Job", Metadata = meta($"{o.Name}-workers", "worker"),
            Spec = new V1JobSpec
            {
                // the work-queue pattern: no completion count; the Job is complete once its pods have exited 0
                Parallelism = Math.Max(1, job.Scheduling.Workers), BackoffLimit = 6 * Math.Max(1,
                    job.Scheduling.Workers),
                Template = new V1PodTemplateSpec
                {
                    Metadata = new V1ObjectMeta { Labels = labels("worker") },
                    Spec = placement.Apply(new V1PodSpec
                    {
                        RestartPolicy = "OnFailure", TerminationGracePeriodSeconds = o.DrainSeconds,
                        Containers =
                        [
                            new V1Container
                            {
                                Name = "worker", Image = o.Image,
                                Command = ["toolkit", .. Jobs.ChildCommands.Of(Jobs.ChildCommands.InferWorker,
                                    worker)],
                                Env = [tokenEnv], VolumeMounts = [mount],
                                Resources = new V1ResourceRequirements { Requests = new Dictionary<string,
                                    ResourceQuantity> { ["cpu"] = new($"{job.Models.Replicas * job.Models.Threads}"),
                                        ["memory"] = new("1Gi") }, Limits = limits },
                            },
                        ],
                        Volumes = [volume],
                    }),
                },
            },
        };
        var tokenSecret = new V1Secret
        {
            ApiVersion = "v1", Kind = "Secret", Metadata = meta(secret, "coordinator"), Type = "Opaque",
            StringData = new Dictionary<string, string> { ["token"] = token },
        };
        return [tokenSecret, service, coordinator, workers];
    }

    /// <summary>Writes the manifests (one file per object and <c>all.yaml</c>); with
    /// <see cref="InferKubernetesOptions.Apply"/>, creates them in the current kubeconfig's cluster.</summary>
    /// <returns>The files written.</returns>
    public static async Task<IReadOnlyList<string>> WriteAsync(InferKubernetesOptions o,
        CancellationToken cancel = default)
    {
        var objects = Manifests(o, CoordinatorTransports.NewToken());
        Directory.CreateDirectory(o.Out);
        var files = new List<string>();
        // the Secret's file and all.yaml hold the token: readable by their owner only, like the job folder's
        foreach (var item in objects)
        {
            var file = Path.Combine(o.Out, $"{item.Metadata.Name}.{item.Kind.ToLowerInvariant()}.yaml");
            AtomicFile.WriteSecret(file, System.Text.Encoding.UTF8.GetBytes(KubernetesYaml.Serialize(item)));
            files.Add(file);
        }
        var all = Path.Combine(o.Out, "all.yaml");
        AtomicFile.WriteSecret(all, System.Text.Encoding.UTF8.GetBytes(KubernetesYaml.SerializeAll(objects)));
        files.Add(all);
        if (o.Apply) await KubernetesApply.ApplyAsync(objects, cancel);
        return files;
    }
}
