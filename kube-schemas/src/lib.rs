//! Writes `lang/schemas/kubernetes.json`: the schema of every built-in Kubernetes kind at the
//! version this crate's `k8s-openapi` feature names, as `koreo check` types resource bodies
//! with it. Run `cargo run -p koreo-kube-schemas` after changing that feature; a test keeps the
//! file fresh.

use k8s_openapi::Resource;
use koreo_lang::openapi;
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value as Json};

/// The file this writes, from the workspace root.
pub const BUNDLE: &str = "lang/schemas/kubernetes.json";

/// The Kubernetes version of the bundled schemas.
// Exactly one of the macros expands, so the assignment cannot move to the declaration.
#[allow(clippy::needless_late_init)]
pub fn kubernetes_version() -> &'static str {
    let version: &str;
    k8s_openapi::k8s_if_1_33! { version = "1.33"; }
    k8s_openapi::k8s_if_1_34! { version = "1.34"; }
    k8s_openapi::k8s_if_1_35! { version = "1.35"; }
    k8s_openapi::k8s_if_1_36! { version = "1.36"; }
    k8s_openapi::k8s_if_1_37! { version = "1.37"; }
    version
}

macro_rules! kinds {
    ($($path:path,)*) => {
        fn register(generator: &mut SchemaGenerator, kinds: &mut Map<String, Json>) {
            $(register_kind::<$path>(generator, kinds);)*
        }
    };
}

fn register_kind<K: Resource + JsonSchema>(
    generator: &mut SchemaGenerator,
    kinds: &mut Map<String, Json>,
) {
    generator.subschema_for::<K>();
    kinds.insert(
        format!("{}/{}", K::API_VERSION, K::KIND),
        K::schema_name().into(),
    );
}

use k8s_openapi::*;
kinds! {
    api::admissionregistration::v1::MutatingAdmissionPolicy,
    api::admissionregistration::v1::MutatingAdmissionPolicyBinding,
    api::admissionregistration::v1::MutatingWebhookConfiguration,
    api::admissionregistration::v1::ValidatingAdmissionPolicy,
    api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
    api::admissionregistration::v1::ValidatingWebhookConfiguration,
    api::admissionregistration::v1alpha1::MutatingAdmissionPolicy,
    api::admissionregistration::v1alpha1::MutatingAdmissionPolicyBinding,
    api::admissionregistration::v1beta1::MutatingAdmissionPolicy,
    api::admissionregistration::v1beta1::MutatingAdmissionPolicyBinding,
    api::apiserverinternal::v1alpha1::StorageVersion,
    api::apps::v1::ControllerRevision,
    api::apps::v1::DaemonSet,
    api::apps::v1::Deployment,
    api::apps::v1::ReplicaSet,
    api::apps::v1::StatefulSet,
    api::authentication::v1::SelfSubjectReview,
    api::authentication::v1::TokenRequest,
    api::authentication::v1::TokenReview,
    api::authorization::v1::LocalSubjectAccessReview,
    api::authorization::v1::SelfSubjectAccessReview,
    api::authorization::v1::SelfSubjectRulesReview,
    api::authorization::v1::SubjectAccessReview,
    api::autoscaling::v1::HorizontalPodAutoscaler,
    api::autoscaling::v1::Scale,
    api::autoscaling::v2::HorizontalPodAutoscaler,
    api::batch::v1::CronJob,
    api::batch::v1::Job,
    api::certificates::v1::CertificateSigningRequest,
    api::certificates::v1alpha1::ClusterTrustBundle,
    api::certificates::v1beta1::ClusterTrustBundle,
    api::certificates::v1beta1::PodCertificateRequest,
    api::coordination::v1::Lease,
    api::coordination::v1alpha2::LeaseCandidate,
    api::coordination::v1beta1::LeaseCandidate,
    api::core::v1::Binding,
    api::core::v1::ComponentStatus,
    api::core::v1::ConfigMap,
    api::core::v1::Endpoints,
    api::core::v1::Event,
    api::core::v1::LimitRange,
    api::core::v1::Namespace,
    api::core::v1::Node,
    api::core::v1::PersistentVolume,
    api::core::v1::PersistentVolumeClaim,
    api::core::v1::Pod,
    api::core::v1::PodTemplate,
    api::core::v1::ReplicationController,
    api::core::v1::ResourceQuota,
    api::core::v1::Secret,
    api::core::v1::Service,
    api::core::v1::ServiceAccount,
    api::discovery::v1::EndpointSlice,
    api::events::v1::Event,
    api::flowcontrol::v1::FlowSchema,
    api::flowcontrol::v1::PriorityLevelConfiguration,
    api::networking::v1::Ingress,
    api::networking::v1::IngressClass,
    api::networking::v1::IPAddress,
    api::networking::v1::NetworkPolicy,
    api::networking::v1::ServiceCIDR,
    api::networking::v1beta1::IPAddress,
    api::networking::v1beta1::ServiceCIDR,
    api::node::v1::RuntimeClass,
    api::policy::v1::Eviction,
    api::policy::v1::PodDisruptionBudget,
    api::rbac::v1::ClusterRole,
    api::rbac::v1::ClusterRoleBinding,
    api::rbac::v1::Role,
    api::rbac::v1::RoleBinding,
    api::resource::v1::DeviceClass,
    api::resource::v1::ResourceClaim,
    api::resource::v1::ResourceClaimTemplate,
    api::resource::v1::ResourceSlice,
    api::resource::v1alpha3::DeviceTaintRule,
    api::resource::v1alpha3::ResourcePoolStatusRequest,
    api::resource::v1beta1::DeviceClass,
    api::resource::v1beta1::ResourceClaim,
    api::resource::v1beta1::ResourceClaimTemplate,
    api::resource::v1beta1::ResourceSlice,
    api::resource::v1beta2::DeviceClass,
    api::resource::v1beta2::DeviceTaintRule,
    api::resource::v1beta2::ResourceClaim,
    api::resource::v1beta2::ResourceClaimTemplate,
    api::resource::v1beta2::ResourceSlice,
    api::scheduling::v1::PriorityClass,
    api::scheduling::v1alpha2::PodGroup,
    api::scheduling::v1alpha2::Workload,
    api::storage::v1::CSIDriver,
    api::storage::v1::CSINode,
    api::storage::v1::CSIStorageCapacity,
    api::storage::v1::StorageClass,
    api::storage::v1::VolumeAttachment,
    api::storage::v1::VolumeAttributesClass,
    api::storage::v1beta1::VolumeAttributesClass,
    api::storagemigration::v1beta1::StorageVersionMigration,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    kube_aggregator::pkg::apis::apiregistration::v1::APIService,
}

/// The bundle's text (see `koreo_lang::openapi::bundle_text`).
pub fn bundle_text() -> String {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let mut kinds = Map::new();
    register(&mut generator, &mut kinds);
    let definitions: Map<String, Json> = generator
        .take_definitions(true)
        .into_iter()
        .map(|(name, schema)| (name, openapi::compact(schema)))
        .collect();
    openapi::bundle_text(kubernetes_version(), &kinds, &definitions)
}
#[cfg(test)]
mod tests {
    #[test]
    fn the_bundled_file_is_what_this_crate_writes() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let written = std::fs::read_to_string(root.join(super::BUNDLE)).unwrap_or_default();
        assert!(
            written == super::bundle_text(),
            "{} is stale: run `cargo run -p koreo-kube-schemas`",
            super::BUNDLE
        );
    }

    #[test]
    fn the_bundle_reads_back_as_json_with_every_kind_defined() {
        let bundle: serde_json::Value = serde_json::from_str(&super::bundle_text()).unwrap();
        let kinds = bundle["kinds"].as_object().unwrap();
        assert_eq!(kinds["apps/v1/Deployment"], "io.k8s.api.apps.v1.Deployment");
        for name in kinds.values() {
            assert!(
                bundle["definitions"][name.as_str().unwrap()].is_object(),
                "{name}"
            );
        }
    }
}
