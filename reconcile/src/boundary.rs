//! Where a workflow may read and write. By default: the namespace its Workflow is defined in
//! and its parent's namespace, no cluster-scoped kinds. A cluster administrator widens that
//! with `--allow FROM=TO,...` (see `parse`); nothing a definition says can widen it.

use std::fmt;

use koreo_lang::eval::ResourceId;

/// The grants beyond the default. Empty: the default only.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Boundary {
    grants: Vec<Grant>,
}

#[derive(Clone, Debug, PartialEq)]
struct Grant {
    /// The Workflow's namespace, or every one (`*`).
    from: Option<String>,
    to: Place,
    /// One kind, or every one.
    kind: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
enum Place {
    Namespace(String),
    AnyNamespace,
    Cluster,
}

/// Who is asking: the Workflow's namespace and the parent it runs for.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    pub workflow_namespace: Option<String>,
    pub parent: ResourceId,
}

impl Principal {
    /// The parent's namespace; a Namespace parent's is itself.
    fn parent_namespace(&self) -> Option<&str> {
        if self.parent.api_version == "v1" && self.parent.kind == "Namespace" {
            Some(&self.parent.name)
        } else {
            self.parent.namespace.as_deref()
        }
    }

    fn is_parent(&self, id: &ResourceId) -> bool {
        let group = |api_version: &str| api_version.rsplit_once('/').map(|(g, _)| g.to_string());
        id.kind == self.parent.kind
            && id.name == self.parent.name
            && id.namespace == self.parent.namespace
            && group(&id.api_version) == group(&self.parent.api_version)
    }
}

/// How `--allow` is written, for messages.
pub const ALLOW_SYNTAX: &str = "FROM=TO[,TO...]: FROM is a Workflow's namespace or `*`; each TO \
    is a namespace, `*` (every namespace) or `cluster` (cluster-scoped kinds), optionally \
    followed by `/Kind` to allow one kind only (`team-a=shared/ConfigMap`, \
    `platform=*,cluster/Namespace`)";

impl Boundary {
    /// Parses `--allow` values (see [`ALLOW_SYNTAX`]).
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<Boundary, String> {
        let mut grants = Vec::new();
        for spec in specs {
            let spec = spec.as_ref();
            let invalid =
                |why: &str| format!("invalid --allow `{spec}`: {why}; write {ALLOW_SYNTAX}");
            let (from, targets) = spec.split_once('=').ok_or_else(|| invalid("no `=`"))?;
            let from = match from.trim() {
                "*" => None,
                "" => return Err(invalid("no namespace before `=`")),
                ns => Some(namespace_name(ns).map_err(|why| invalid(&why))?),
            };
            for target in targets.split(',').map(str::trim) {
                let (place, kind) = match target.split_once('/') {
                    Some((place, "*")) => (place, None),
                    Some((place, kind)) if is_kind(kind) => (place, Some(kind.to_string())),
                    Some((_, kind)) => {
                        return Err(invalid(&format!(
                            "`{kind}` is not a kind (e.g. `ConfigMap`)"
                        )));
                    }
                    None => (target, None),
                };
                let to = match place {
                    "*" => Place::AnyNamespace,
                    "cluster" => Place::Cluster,
                    "" => return Err(invalid("an empty target")),
                    ns => Place::Namespace(namespace_name(ns).map_err(|why| invalid(&why))?),
                };
                grants.push(Grant {
                    from: from.clone(),
                    to,
                    kind,
                });
            }
        }
        Ok(Boundary { grants })
    }

    /// Whether `principal`'s workflow may read or write `id`.
    pub fn permits(&self, principal: &Principal, id: &ResourceId) -> bool {
        if principal.is_parent(id) {
            return true;
        }
        if let Some(namespace) = id.namespace.as_deref()
            && (principal.workflow_namespace.as_deref() == Some(namespace)
                || principal.parent_namespace() == Some(namespace))
        {
            return true;
        }
        self.grants.iter().any(|grant| {
            grant
                .from
                .as_ref()
                .is_none_or(|from| principal.workflow_namespace.as_ref() == Some(from))
                && grant.kind.as_ref().is_none_or(|kind| *kind == id.kind)
                && match (&grant.to, &id.namespace) {
                    (Place::AnyNamespace, Some(_)) => true,
                    (Place::Namespace(allowed), Some(namespace)) => allowed == namespace,
                    (Place::Cluster, None) => true,
                    _ => false,
                }
        })
    }

    /// Why `id` is out of reach, and how an administrator would allow it.
    pub fn refusal(&self, principal: &Principal, id: &ResourceId) -> String {
        let own = principal.workflow_namespace.as_deref().unwrap_or("*");
        let target = match &id.namespace {
            Some(namespace) => format!("{namespace}/{}", id.kind),
            None => format!("cluster/{}", id.kind),
        };
        let reach = match (
            principal.workflow_namespace.as_deref(),
            principal.parent_namespace(),
        ) {
            (Some(w), Some(p)) if w != p => format!("namespaces {w} and {p}"),
            (Some(w), _) | (None, Some(w)) => format!("namespace {w}"),
            (None, None) => "no namespace".to_string(),
        };
        format!(
            "{id} is outside this workflow's reach: a Workflow in namespace {own} reaches its own \
             and its parent's namespace ({reach}) and its parent, and no other cluster-scoped \
             object. A cluster administrator can allow this with the controller's \
             `--allow {own}={target}`"
        )
    }
}

impl fmt::Display for Boundary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.grants.is_empty() {
            return f.write_str("own and parent's namespace only");
        }
        let grants: Vec<String> = self
            .grants
            .iter()
            .map(|g| {
                let to = match &g.to {
                    Place::Namespace(ns) => ns.as_str(),
                    Place::AnyNamespace => "*",
                    Place::Cluster => "cluster",
                };
                format!(
                    "{}={to}/{}",
                    g.from.as_deref().unwrap_or("*"),
                    g.kind.as_deref().unwrap_or("*")
                )
            })
            .collect();
        write!(f, "own and parent's namespace, and {}", grants.join(" "))
    }
}

fn namespace_name(name: &str) -> Result<String, String> {
    if koreo_lang::model::is_dns_label(name) {
        Ok(name.to_string())
    } else {
        Err(format!("`{name}` is not a namespace name"))
    }
}

fn is_kind(kind: &str) -> bool {
    kind.starts_with(|c: char| c.is_ascii_uppercase())
        && kind.chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(kind: &str, namespace: Option<&str>) -> ResourceId {
        ResourceId {
            api_version: "v1".into(),
            kind: kind.into(),
            plural: None,
            name: "x".into(),
            namespace: namespace.map(str::to_string),
        }
    }

    fn principal(workflow: &str, parent: &str) -> Principal {
        Principal {
            workflow_namespace: Some(workflow.into()),
            parent: ResourceId {
                api_version: "example.koreo.dev/v1".into(),
                ..id("Greeting", Some(parent))
            },
        }
    }

    #[test]
    fn a_namespace_parent_is_reached_and_so_is_what_it_holds() {
        let principal = Principal {
            workflow_namespace: Some("default".into()),
            parent: ResourceId {
                name: "team-a".into(),
                ..id("Namespace", None)
            },
        };
        let boundary = Boundary::default();
        let mut parent = id("Namespace", None);
        parent.name = "team-a".into();
        assert!(boundary.permits(&principal, &parent));
        assert!(boundary.permits(&principal, &id("ResourceQuota", Some("team-a"))));
        assert!(
            !boundary.permits(&principal, &id("Namespace", None)),
            "another Namespace"
        );
        assert!(!boundary.permits(&principal, &id("ResourceQuota", Some("team-b"))));
    }

    #[test]
    fn by_default_a_workflow_reaches_its_own_and_its_parents_namespace() {
        let boundary = Boundary::default();
        let team_a = principal("team-a", "team-a");
        assert!(boundary.permits(&team_a, &id("ConfigMap", Some("team-a"))));
        assert!(!boundary.permits(&team_a, &id("ConfigMap", Some("kube-system"))));
        assert!(!boundary.permits(&team_a, &id("ClusterRoleBinding", None)));
        let platform = principal("platform", "team-b");
        assert!(boundary.permits(&platform, &id("Deployment", Some("team-b"))));
        assert!(boundary.permits(&platform, &id("Deployment", Some("platform"))));
        assert!(!boundary.permits(&platform, &id("Deployment", Some("team-c"))));
    }

    #[test]
    fn an_administrator_widens_it_per_namespace_and_kind() {
        let boundary =
            Boundary::parse(&["platform=*,cluster/Namespace", "team-a=shared/ConfigMap"]).unwrap();
        let platform = principal("platform", "team-b");
        assert!(boundary.permits(&platform, &id("Deployment", Some("team-c"))));
        assert!(boundary.permits(&platform, &id("Namespace", None)));
        assert!(!boundary.permits(&platform, &id("ClusterRole", None)));
        let team_a = principal("team-a", "team-a");
        assert!(boundary.permits(&team_a, &id("ConfigMap", Some("shared"))));
        assert!(!boundary.permits(&team_a, &id("Secret", Some("shared"))));
        assert!(!boundary.permits(&team_a, &id("Namespace", None)));
        let everyone = Boundary::parse(&["*=cluster/Namespace"]).unwrap();
        assert!(everyone.permits(&team_a, &id("Namespace", None)));
    }

    #[test]
    fn a_refusal_says_how_to_allow_it() {
        let message = Boundary::default().refusal(
            &principal("team-a", "team-a"),
            &id("Secret", Some("kube-system")),
        );
        assert!(
            message.starts_with("Secret:kube-system:x is outside this workflow's reach"),
            "{message}"
        );
        assert!(
            message.contains("`--allow team-a=kube-system/Secret`"),
            "{message}"
        );
    }

    #[test]
    fn bad_grants_are_refused_with_the_syntax() {
        for (spec, why) in [
            ("team-a", "no `=`"),
            ("=x", "no namespace before `=`"),
            ("Team=x", "`Team` is not a namespace name"),
            ("a=b/configmap", "`configmap` is not a kind"),
            ("a=b,", "an empty target"),
        ] {
            let error = Boundary::parse(&[spec]).unwrap_err();
            assert!(
                error.contains(why) && error.contains("FROM=TO"),
                "{spec}: {error}"
            );
        }
    }
}
