namespace Toolkit.Models;

/// <summary>
/// The shape of a causal language model, whatever its family: the toolkit's GPT (<see cref="GptConfig"/>) or a Hugging
/// Face decoder (<see cref="DecoderConfig"/>). Every system reads a model's shape through this one view.
/// </summary>
public interface IModelConfig
{
    /// <summary>The family as Hugging Face's <c>model_type</c> names it (<c>gpt2</c>, <c>llama</c>, <c>mixtral</c>,
    /// ...).</summary>
    string ModelType { get; }

    /// <summary>Tokens in the vocabulary (rows of the embedding).</summary>
    int VocabularySize { get; }

    /// <summary>Longest sequence the toolkit runs (positions).</summary>
    int ContextLength { get; }

    /// <summary>Transformer blocks (decoder layers).</summary>
    int Layers { get; }

    /// <summary>Width of the residual stream.</summary>
    int Hidden { get; }

    /// <summary>Routed experts per sparse layer; 0 for a dense model.</summary>
    int Experts { get; }

    /// <summary>Every parameter (a tied output counted once).</summary>
    long ParameterCount { get; }

    /// <summary>The parameters outside the blocks (embeddings, final norm, an untied output): what layer-wise
    /// execution gathers once per micro-step as its root.</summary>
    long RootParameterCount { get; }

    /// <summary>Validates the shape; throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid
    /// value.</summary>
    void Check();
}
