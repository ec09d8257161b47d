from .core import StandinConfig


class LLaDA2MoeConfig(StandinConfig):
    """LLaDA2.0's config: Ling-style MoE fields, partial RoPE, no block size of its own."""

    model_type = "llada2_moe"

    def __init__(
        self,
        head_dim=8,
        partial_rotary_factor=0.5,
        num_experts=4,
        num_experts_per_tok=2,
        num_shared_experts=1,
        moe_intermediate_size=16,
        intermediate_size=64,
        first_k_dense_replace=1,
        routed_scaling_factor=1.0,
        rms_norm_eps=1e-6,
        use_cache=True,
        rope=True,
        **kwargs,
    ):
        self.head_dim, self.partial_rotary_factor = head_dim, partial_rotary_factor
        self.num_experts, self.num_experts_per_tok = num_experts, num_experts_per_tok
        self.num_shared_experts, self.moe_intermediate_size = num_shared_experts, moe_intermediate_size
        self.intermediate_size, self.first_k_dense_replace = intermediate_size, first_k_dense_replace
        self.routed_scaling_factor, self.rms_norm_eps, self.use_cache = (
            routed_scaling_factor,
            rms_norm_eps,
            use_cache,
        )
        super().__init__(rope=rope, **kwargs)
