//! The two engine payloads a scan reads, decoded to the few fields the accounting needs.
//!
//! These types are deliberately ours rather than the client library's generated models: those
//! reject container states they do not know (Podman reports several of its own) and require
//! fields that some engines omit, and either would fail a whole scan over one odd object.

use serde::Deserialize;

/// One entry of `GET /images/json?all=1`.
///
/// See the engine API reference, "ImageList":
/// <https://docs.docker.com/reference/api/engine/version/v1.41/#tag/Image>.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageSummary {
    #[serde(rename = "Id")]
    pub id: String,

    /// `null` on some engines for an image without tags.
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,

    /// `name@sha256:...` references; empty for images that were never pushed or pulled.
    #[serde(rename = "RepoDigests", default)]
    pub repo_digests: Option<Vec<String>>,

    /// Creation time in seconds since the epoch.
    #[serde(rename = "Created", default)]
    pub created: Option<i64>,

    /// Total size of the image's layers in bytes.
    #[serde(rename = "Size", default)]
    pub size: Option<i64>,

    /// The image this one was built on, on the classic store; empty or absent otherwise.
    #[serde(rename = "ParentId", default)]
    pub parent_id: Option<String>,
}

/// One entry of `GET /containers/json?all=1`.
///
/// See the engine API reference, "ContainerList":
/// <https://docs.docker.com/reference/api/engine/version/v1.41/#tag/Container>.
#[derive(Debug, Clone, Deserialize)]
pub struct ContainerSummary {
    #[serde(rename = "Id")]
    pub id: String,

    /// The ID of the image the container was created from: the only reliable link to it.
    #[serde(rename = "ImageID", default)]
    pub image_id: Option<String>,

    /// What the user typed (a name, a short or full ID, or `name@digest`). Kept for logs
    /// only: it goes stale when a tag moves and must never be used to find the image.
    #[serde(rename = "Image", default)]
    pub image: Option<String>,

    /// The engine's word for the container's state; any string is accepted.
    #[serde(rename = "State", default)]
    pub state: Option<String>,
}

/// Puts an image ID into the one form the exporter compares and publishes: lowercase
/// `algorithm:hex`. Engines differ in spelling (Podman leaves out `sha256:` in places).
pub fn normalize_image_id(id: &str) -> String {
    let id = id.trim();
    if id.contains(':') {
        return id.to_ascii_lowercase();
    }
    format!("sha256:{}", id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids_compare_in_one_form() {
        let hex = "3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741";
        assert_eq!(normalize_image_id(hex), format!("sha256:{hex}"));
        assert_eq!(normalize_image_id(&format!("sha256:{hex}")), format!("sha256:{hex}"));
        assert_eq!(
            normalize_image_id(&format!("SHA256:{}", hex.to_uppercase())),
            format!("sha256:{hex}")
        );
    }

    #[test]
    fn unknown_state_and_null_fields_decode() {
        let containers: Vec<ContainerSummary> = serde_json::from_str(
            r#"[{"Id":"a","ImageID":"sha256:1","State":"stopped","Image":"x"},{"Id":"b"}]"#,
        )
        .expect("decode");
        assert_eq!(containers[0].state.as_deref(), Some("stopped"));
        assert_eq!(containers[1].state, None);

        let images: Vec<ImageSummary> = serde_json::from_str(
            r#"[{"Id":"sha256:1","RepoTags":null,"RepoDigests":null,"Containers":-1,
                "SharedSize":-1,"Size":10,"Created":5}]"#,
        )
        .expect("decode");
        assert_eq!(images[0].repo_tags, None);
        assert_eq!(images[0].size, Some(10));
    }
}
