using System.Net;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace Toolkit.BatchInference;

/// <summary>
/// Creates a job's objects in the current kubeconfig's cluster, or updates them when they exist (a second
/// <c>--apply</c>): the Secret and the Service by server-side apply, the Jobs, whose pod templates Kubernetes does not
/// let change, by deleting them (their pods with them) and creating them again; a coordinator recreated that way
/// resumes the job from its state on the shared volume.
/// </summary>
internal static class KubernetesApply
{
    private const string FieldManager = "lmtoolkit";

    /// <summary>Applies <paramref name="objects"/>, in order.</summary>
    /// <exception cref="InvalidOperationException">No cluster is configured; the manifests were written.</exception>
    public static async Task ApplyAsync(IReadOnlyList<IKubernetesObject<V1ObjectMeta>> objects,
        CancellationToken cancel)
    {
        KubernetesClientConfiguration config;
        try { config = KubernetesClientConfiguration.BuildDefaultConfig(); }
        catch (Exception e) { throw new InvalidOperationException(
            $"--apply needs a configured cluster (a kubeconfig, or running in a pod): {e.Message}. The manifests " +
                $"were written; apply them with kubectl apply -f.", e); }
        using var client = new Kubernetes(config);
        foreach (var item in objects)
        {
            var (name, ns) = (item.Metadata.Name, item.Metadata.NamespaceProperty);
            var patch = new V1Patch(KubernetesJson.Serialize(item), V1Patch.PatchType.ApplyPatch);
            switch (item)
            {
                case V1Secret:
                    await client.CoreV1.PatchNamespacedSecretAsync(patch, name, ns, fieldManager: FieldManager,
                        force: true, cancellationToken: cancel);
                    break;
                case V1Service:
                    await client.CoreV1.PatchNamespacedServiceAsync(patch, name, ns, fieldManager: FieldManager,
                        force: true, cancellationToken: cancel);
                    break;
                case V1Job job:
                    await DeleteJobAsync(client, name, ns, cancel);
                    await client.BatchV1.CreateNamespacedJobAsync(job, ns, cancellationToken: cancel);
                    break;
            }
        }
    }

    /// <summary>Deletes a Job and its pods, if it exists, and waits (up to two minutes) until it is gone.</summary>
    private static async Task DeleteJobAsync(Kubernetes client, string name, string ns, CancellationToken cancel)
    {
        try
        {
            await client.BatchV1.DeleteNamespacedJobAsync(name, ns, propagationPolicy: "Foreground",
                cancellationToken: cancel);
        }
        catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound) { return; }
        var deadline = DateTime.UtcNow.AddMinutes(2);
        while (DateTime.UtcNow < deadline)
        {
            try { await client.BatchV1.ReadNamespacedJobAsync(name, ns, cancellationToken: cancel); }
            catch (HttpOperationException e) when (e.Response.StatusCode == HttpStatusCode.NotFound) { return; }
            await Task.Delay(1000, cancel);
        }
        throw new InvalidOperationException($"Job {ns}/{name} was not gone two minutes after its deletion");
    }
}
