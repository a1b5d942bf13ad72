"""The wiring of a functional Keras model, layer by layer, through public attributes only."""

import keras


def layer_graph(model, purpose):
    """`{layer name: (input tensors, output tensors)}` of a functional model, in graph order.

    Read through the public `layer.input` and `layer.output`, which describe a layer's first
    call only: a layer called more than once leaves tensors that no layer is known to
    produce, and then this raises, naming `purpose` (the function that needs the graph).

    Args:
        model: a functional `keras.Model`.
        purpose: str, the caller's name, for the error message.

    Returns:
        A dict in the order of `model.layers` (topological for a functional model), input
        layers left out.
    """
    graph = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.InputLayer):
            graph[layer.name] = (keras.tree.flatten(layer.input), keras.tree.flatten(layer.output))
    known = {id(t) for t in keras.tree.flatten(model.inputs)}
    known |= {id(t) for _, outputs in graph.values() for t in outputs}
    readers = [(name, t) for name, (inputs, _) in graph.items() for t in inputs]
    readers += [("the model's outputs", t) for t in keras.tree.flatten(model.outputs)]
    for name, tensor in readers:
        if id(tensor) not in known:
            raise ValueError(
                f"`{purpose}` needs every layer called once in the model (a layer called "
                f"twice computes a tensor that {name} reads). Received: model={model.name!r}"
            )
    return graph


def replace_layers(model, replacements):
    """A clone of a functional model with some layers replaced.

    Args:
        model: a functional `keras.Model`.
        replacements: `{layer name: callable(layer) -> new layer}`. For a `TimeFold` the
            callable gets and returns the wrapped layer; the new one is wrapped again under the
            original name.

    Returns:
        The new model. Layers not replaced carry their weights over; the replaced ones start
        from their initializers, for the caller to set.
    """
    from keras_dta.layers import TimeFold

    def clone(layer):
        make = replacements.get(layer.name)
        if make is None:
            return layer.__class__.from_config(layer.get_config())
        if isinstance(layer, TimeFold):
            return TimeFold(make(layer.layer), name=layer.name)
        return make(layer)

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.name not in replacements and layer.weights:
            new.get_layer(layer.name).set_weights(layer.get_weights())
    return new
