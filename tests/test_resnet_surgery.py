import pytest
import torch
import torchvision

from atml.models.resnet import PooledFeatures, apply_policy, remove_shortcuts, replace_head, residual_blocks


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return torchvision.models.resnet50(weights=None).eval()  # Bottleneck blocks, as ResNet-152 has


def test_switched_off_block_is_its_branch_without_the_identity(resnet):
    model = torchvision.models.resnet50(weights=None).eval()
    model.load_state_dict(resnet.state_dict())
    remove_shortcuts(model, ["layer2.1", "layer3.0"])  # an identity block and a downsampling block
    for name, inputs in (("layer2.1", torch.randn(2, 512, 8, 8)), ("layer3.0", torch.randn(2, 512, 8, 8))):
        block, original = residual_blocks(model)[name], residual_blocks(resnet)[name]
        with torch.no_grad():
            branch = block.bn3(
                block.conv3(block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(inputs)))))))
            )
            assert torch.equal(block(inputs), torch.relu(branch))
            identity = inputs if original.downsample is None else original.downsample(inputs)
            assert torch.allclose(original(inputs), torch.relu(branch + identity), atol=1e-5)
            assert not torch.allclose(block(inputs), original(inputs))
    untouched = residual_blocks(model)["layer1.0"]
    with torch.no_grad():
        assert torch.equal(
            untouched(torch.ones(1, 64, 4, 4)), residual_blocks(resnet)["layer1.0"](torch.ones(1, 64, 4, 4))
        )
    assert list(model.state_dict()) == list(resnet.state_dict())  # same keys: weights still load
    with pytest.raises(ValueError, match="no residual block 'layer9.0'"):
        remove_shortcuts(model, ["layer9.0"])


@pytest.mark.parametrize(
    "policy, trainable_prefixes",
    [
        ("frozen", ("fc.",)),
        ("last-block", ("layer4.", "fc.")),
        ("full", ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.", "fc.")),
    ],
)
def test_freezing_policies_leave_exactly_the_intended_parameters_trainable(policy, trainable_prefixes):
    model = torchvision.models.resnet18(weights=None)
    replace_head(model, 100)
    count = apply_policy(model, policy)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith(trainable_prefixes)}
    assert count == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert model.fc.out_features == 100 and "fc.weight" in trainable


def test_pooled_features_of_named_layers(resnet):
    hooks = PooledFeatures(resnet, ["layer1", "layer3", "layer4"])
    with torch.no_grad():
        resnet(torch.randn(3, 3, 64, 64))
    assert {k: tuple(v.shape) for k, v in hooks.outputs.items()} == {
        "layer1": (3, 256),
        "layer3": (3, 1024),
        "layer4": (3, 2048),
    }
    hooks.remove()
    with pytest.raises(ValueError, match="no module 'layer7'"):
        PooledFeatures(resnet, ["layer7"])
